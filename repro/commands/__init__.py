"""The commands of ``pbt-repro``, a module each: its help line (``HELP``), its parser and its ``main(argv)``, which
returns the exit code (``run`` serves ``baseline`` too; ``tools``, a domain's own commands). The work is done by the
modules they call (``repro.reproduce``, ``repro.study``, ...), the flags several of them take are in ``repro.flags``,
and ``repro.cli`` dispatches to them."""
