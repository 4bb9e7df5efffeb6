"""Suite definitions (installed as ``dlbench.suites``): each module defines suites with
``dlbench.suite.define_suite``; ``asv_*`` modules hold the asv benchmark classes generated from
the same definitions."""
