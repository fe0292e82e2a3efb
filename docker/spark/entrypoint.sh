#!/bin/bash
# Runs a Spark class (master or worker) of the image's Spark.
# A PySpark driver outside the container tells executors to run its own Python (its
# PYSPARK_PYTHON, e.g. a venv's path): PYTHON_ALIASES="path ..." makes each such path run
# this image's python3, of the same minor version (3.11).
set -euo pipefail
for path in ${PYTHON_ALIASES:-}; do
  mkdir -p "$(dirname "$path")"
  ln -sf /usr/bin/python3 "$path"
done
exec /bin/bash "$SPARK_HOME/bin/spark-class" "$@"
