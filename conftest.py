"""Root conftest: deliberately logic-free; the plugin lives in conformance.pytest_plugin."""
