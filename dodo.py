"""Lets plain `doit` drive comfydock's task graph for the environment named by $COMFYDOCK_ENV."""

from comfydock.engine import dodo_namespace

globals().update(dodo_namespace())
