"""A stand-in for ComfyUI's server.py, used by comfydock's demo and tests.

ComfyUI's main.py makes one PromptServer before it loads custom nodes, and many nodes register
HTTP routes at import time through `PromptServer.instance.routes` (rgthree-comfy, KJNodes, ...):
a node imported without it fails with "type object 'PromptServer' has no attribute 'instance'".
"""


class _Routes:
    """aiohttp's RouteTableDef as nodes use it: decorators that register a handler."""

    def __init__(self):
        self.added = []

    def _method(self, method):
        def route(path):
            def register(handler):
                self.added.append((method, path, handler))
                return handler

            return register

        return route

    def __getattr__(self, name):
        if name in ("get", "post", "put", "delete", "patch"):
            return self._method(name.upper())
        raise AttributeError(name)


class PromptServer:
    def __init__(self, loop):
        PromptServer.instance = self
        self.loop = loop
        self.routes = _Routes()
