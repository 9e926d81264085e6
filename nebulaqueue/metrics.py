"""Queue gauges for /metrics: the depth (pending tasks) and the other Huey counts."""

from __future__ import annotations

from nebulacore.blocking import Offload
from nebulacore.config import Settings
from nebulacore.ops import GaugeSource
from nebulacore.prometheus import sample_name
from nebulaqueue.huey import make_huey, queue_counts


def queue_gauges(settings: Settings) -> GaugeSource:
    """A gauge source over ``settings``' queue (Huey's calls block: run off the loop)."""
    huey = make_huey(settings)
    offload = Offload.default()

    def read() -> dict[str, float]:
        values = queue_counts(huey)
        gauges: dict[str, float] = {
            sample_name("nebula_queue_tasks", state=name): count for name, count in values.items()
        }
        gauges["nebula_queue_depth"] = values.get("pending", 0)
        return gauges

    async def source() -> dict[str, float]:
        return await offload.run(read)

    return source
