"""A stand-in for one of ComfyUI's comfy_extras modules: a core type that lives outside nodes.py."""


class FixtureLatentBlend:
    pass


NODE_CLASS_MAPPINGS = {"FixtureLatentBlend": FixtureLatentBlend}
