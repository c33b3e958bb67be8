"""CRM emulators: real HTTP servers on 127.0.0.1 (ephemeral port) following the documented
paths, paging, history shapes, error bodies and rate-limit headers (see shared/CRM_APIS.md),
with switches to inject faults. Their JSON is checked against the vendors' official client
models in tests/unit/test_emulator_shapes.py so they cannot drift from the real shapes."""
