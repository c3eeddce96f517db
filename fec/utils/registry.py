"""A name → object table filled by a ``register`` decorator."""


class Registry(dict):
    """``BACKBONES = Registry("backbone")``; ``@BACKBONES.register("resnet18")``."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def register(self, name, obj=None):
        if obj is not None:
            self._add(name, obj)
            return obj

        def decorator(fn):
            self._add(name, fn)
            return fn

        return decorator

    def _add(self, name, obj):
        if name in self:
            raise KeyError(f"{self.kind} {name!r} is already registered")
        self[name] = obj

    def __getitem__(self, name):
        try:
            return super().__getitem__(name)
        except KeyError:
            known = ", ".join(sorted(self)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {known}") from None
