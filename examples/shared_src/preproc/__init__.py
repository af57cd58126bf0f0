"""Preprocessing shared by several models: tritonpack bundles it (--src examples/shared_src)."""

from .resize import resize_to

__all__ = ["resize_to"]
