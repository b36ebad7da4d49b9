"""The manifest's `runtime` pin, enforced: replay refuses an engine version or device it does not pin.

"Frozen" means the same manifest, suite, engine version and device give the same outputs, so a
replay on anything else is refused (exit 3, the environment differs from the pin) unless the user
accepts the drift with `--allow-engine-drift` / `--allow-device-drift`, which run.json records.
"""

from __future__ import annotations

from typing import Any

from releasectl.errors import EnvironmentFailure
from releasectl.manifest.models import Runtime as RuntimePin
from releasectl.replay.engines.base import Runtime


def pinned_device_class(device: str) -> str:
    return "cpu" if device.strip().lower() == "cpu" else "cuda"


def runtime_drift(
    pin: RuntimePin, engine: str, runtime: Runtime
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(engine drift, device drift): what differs between the pin and what is installed here."""
    pinned_version = pin.pinned_version(engine)
    engine_drift = None
    if pinned_version != runtime.engine_version:
        engine_drift = {"engine": engine, "pinned": pinned_version, "installed": runtime.engine_version}
    device_drift = None
    if runtime.device_class != "remote" and runtime.device != pin.device:
        device_drift = {
            "pinned": pin.device,
            "found": runtime.device,
            "pinned_class": pinned_device_class(pin.device),
            "found_class": runtime.device_class,
        }
    return engine_drift, device_drift


def enforce_runtime(
    pin: RuntimePin,
    engine: str,
    runtime: Runtime,
    *,
    manifest_display: str,
    allow_engine_drift: bool,
    allow_device_drift: bool,
) -> dict[str, Any]:
    """Refuse a replay whose runtime differs from the pin, or return the accepted drift to record."""
    engine_drift, device_drift = runtime_drift(pin, engine, runtime)
    if engine_drift and not allow_engine_drift:
        if engine_drift["pinned"] is None:
            pinned = ", ".join(
                f"{e} {v}" for e, v in {pin.engine: pin.engine_version, **pin.engine_versions}.items()
            )
            message = f"{manifest_display} pins no version of the '{engine}' engine (runtime pins {pinned}); {runtime.engine_version} is installed"
            hint = f"add runtime.engine_versions: {{{engine}: '{runtime.engine_version}'}} to the release, or pass --allow-engine-drift (recorded in run.json)"
        else:
            message = f"{manifest_display} pins {engine} {engine_drift['pinned']}, but {runtime.engine_version} is installed"
            hint = "install the locked environment (make install), or pass --allow-engine-drift (recorded in run.json)"
        raise EnvironmentFailure(message, hint=hint)
    if device_drift and not allow_device_drift:
        kind = "device class" if device_drift["pinned_class"] != device_drift["found_class"] else "device"
        raise EnvironmentFailure(
            f"this machine's {kind} is '{runtime.device}' but {manifest_display} pins runtime.device '{pin.device}'",
            hint="results reproduce only on the pinned device; run on it, or pass --allow-device-drift (recorded in run.json)",
        )
    return {"engine": engine_drift, "device": device_drift}
