"""What phoenix puts into a guest and reads back from it: the feature runner and its status file.

The runner (``runner.sh``) travels in the user-data; :mod:`phoenix.guest.runner` holds the paths
both sides agree on and parses the status file the runner writes, so that the reconciler (through
the guest agent) and the simulator's guest speak exactly one format.
"""
