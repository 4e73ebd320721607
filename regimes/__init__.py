"""Training regimes as plug-ins: every module in this package that registers a Regime is found by name."""

from __future__ import annotations

import importlib
import pkgutil

from regimes.base import REGISTRY, Parameter, Regime, TripleEmbeddings, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "Parameter", "Regime", "TripleEmbeddings", "register"]
