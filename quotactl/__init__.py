"""quotactl: the synchronous admin command line of the quota center.

Modules: ``main`` (argparse and dispatch), ``commands`` (one function per
subcommand), ``render`` (pure text / JSON rendering), ``parse`` (pure strict
input parsing) and ``exit_codes``. See ``quotactl.exit_codes`` for the
process exit codes.
"""
