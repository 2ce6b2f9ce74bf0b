"""A library user writes, reads, exports, reports and verifies through ``carelog.audit`` alone."""

from __future__ import annotations

import subprocess
import sys

import carelog.audit


def test_the_package_face_offers_write_read_export_report_and_verify() -> None:
    from carelog.audit import (  # noqa: F401 - importing is the assertion
        AuditFilters,
        compliance_report,
        export_audit_logs,
        get_audit_logs,
        log_audit_event,
        resource_trail,
        user_activity,
        verify_org,
    )

    for name in carelog.audit.__all__:
        assert getattr(carelog.audit, name) is not None, name


def test_the_write_path_does_not_load_the_integrity_modules() -> None:
    code = (
        "import sys, carelog.audit; "
        "print(any(m.startswith('carelog.audit.integrity') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
