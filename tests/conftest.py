"""Unit-test set-up shared by every test module."""

import signal


def pytest_configure(config):
    # test_signals checks what the handlers do on SIGHUP, in this process and in children:
    # a run started under nohup (SIGHUP ignored, which children inherit and `signals`
    # respects) must not change that.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
