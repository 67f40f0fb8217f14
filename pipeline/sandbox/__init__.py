"""A built-in stand-in for the DigitalOcean billing API, served over real HTTP on loopback."""

from pipeline.sandbox.data import SandboxData, build_dataset, build_teams
from pipeline.sandbox.faults import Fault
from pipeline.sandbox.server import SandboxServer

__all__ = ["Fault", "SandboxData", "SandboxServer", "build_dataset", "build_teams"]
