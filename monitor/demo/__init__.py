"""The demo: a small shop with switchable faults and the scripted timeline that breaks it."""

from monitor.demo.shop import Fault, ShopFaults, create_shop_app, start_shop
from monitor.demo.timeline import DEMO_DURATION, DEMO_PHASES, Phase, phase_at, run_timeline

__all__ = [
    "DEMO_DURATION",
    "DEMO_PHASES",
    "Fault",
    "Phase",
    "ShopFaults",
    "create_shop_app",
    "phase_at",
    "run_timeline",
    "start_shop",
]
