"""Turning a trained field into assets: isosurface, cleanup, UV atlas, texture bake, OBJ/GLB writers, turntables.

Conventions: meshes in memory are in fastdream world coordinates (z-up, world units); the OBJ and GLB writers
rotate to y-up with the front (world +x) facing +z, see fastdream.export.writers.
"""
from fastdream.export.asset import ExportResult, export_asset, parse_formats, vertex_normals
from fastdream.export.bake import bake_texture, fill_gutters, rasterize_uv
from fastdream.export.isosurface import (Mesh, NoSurfaceError, depth_threshold, evaluate_grid, extract_mesh,
                                         silhouette_threshold)
from fastdream.export.turntable import render_turntable, turntable_azimuths, write_video
from fastdream.export.uv import Unwrapped, unwrap
from fastdream.export.writers import atomic_write, world_to_yup, write_glb, write_obj, yup_to_world

__all__ = [
    "ExportResult", "Mesh", "NoSurfaceError", "Unwrapped", "atomic_write", "bake_texture", "depth_threshold",
    "evaluate_grid", "export_asset", "extract_mesh", "fill_gutters", "parse_formats", "rasterize_uv",
    "render_turntable", "silhouette_threshold", "turntable_azimuths", "unwrap", "vertex_normals", "world_to_yup",
    "write_glb", "write_obj", "write_video", "yup_to_world",
]
