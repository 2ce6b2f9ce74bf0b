"""Every HTTP router of the platform, in one list the web app mounts."""

from __future__ import annotations

from fastapi import APIRouter

ROUTERS: list[APIRouter] = []
