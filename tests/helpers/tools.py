"""A CLI of tools/ loaded as a module, so a test can call its ``main(argv)`` in-process
(the logic it runs lives in the package; tests import that from fec directly)."""
import importlib.util
import os

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools")


def load_tool(name):
    """tools/<name>.py as a module named ``<name>_tool``."""
    spec = importlib.util.spec_from_file_location(f"{name}_tool", os.path.join(TOOLS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
