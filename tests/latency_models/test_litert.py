"""The interpreter comes from ai-edge-litert, else tflite-runtime, else a clear error naming both."""

from __future__ import annotations

import sys

import pytest

from latency_models.litert import interpreter_class


def test_prefers_ai_edge_litert() -> None:
    from ai_edge_litert.interpreter import Interpreter

    assert interpreter_class() is Interpreter


def test_missing_runtimes_raise_an_error_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ImportError, match="ai-edge-litert.*tflite-runtime"):
        interpreter_class()
