# Stand-in for infiniflow/ragflow rag/llm/__init__.py (v0.22 through HEAD, read at commit 554b9f96):
# the `_FACTORY_NAME` registration scan. For each model module, every class that subclasses that module's
# `Base` (found by the name "Base") and has `_FACTORY_NAME` (a string or a list of strings) is put into
# the module's dict under each factory name. Only the rerank module is reproduced; our own code.
import importlib
import inspect

RerankModel: dict[str, type] = {}

MODULE_MAPPING = {"rerank_model": RerankModel}

for module_name, mapping in MODULE_MAPPING.items():
    module = importlib.import_module(f"{__name__}.{module_name}")
    members = inspect.getmembers(module, inspect.isclass)
    base = next((obj for name, obj in members if name == "Base"), None)
    if base is None:
        continue
    for _, obj in members:
        if issubclass(obj, base) and obj is not base and hasattr(obj, "_FACTORY_NAME"):
            names = obj._FACTORY_NAME if isinstance(obj._FACTORY_NAME, list) else [obj._FACTORY_NAME]
            for factory_name in names:
                mapping[factory_name] = obj

__all__ = ["RerankModel"]
