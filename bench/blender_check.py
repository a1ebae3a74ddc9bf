"""Open an exported GLB in Blender (a client nobody here wrote): weld, count non-manifold edges, render it shaded,
then cut it open at x = 0 and render the cut, so internal surfaces would show.

    python3.11 -m venv /tmp/bpyenv && /tmp/bpyenv/bin/pip install bpy      # Blender as a Python module
    /tmp/bpyenv/bin/python bench/blender_check.py RUN/mesh/model.glb OUT_PREFIX

Writes OUT_PREFIX_whole.png and OUT_PREFIX_cut.png (Cycles on the CPU, 16 samples, 320x320) and prints one
"BLENDER:" line with the mesh counts. Workbench needs an OpenGL context, which a headless machine lacks.
"""
import sys

import bpy  # first: importing bpy is what makes bmesh and mathutils importable
import bmesh  # noqa: E402  isort: skip
from mathutils import Vector
glb, out = sys.argv[1], sys.argv[2]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=glb)
objs = [o for o in bpy.context.scene.objects if o.type == "MESH"]
ob = objs[0]
bm = bmesh.new(); bm.from_mesh(ob.data)
bmesh.ops.remove_doubles(bm, verts=bm.verts, dist=1e-6)
nm = sum(1 for e in bm.edges if not e.is_manifold)
print(f"BLENDER: {len(objs)} mesh object(s), {len(bm.verts)} verts, {len(bm.faces)} faces after welding UV seams, "
      f"non-manifold edges {nm}, material {ob.active_material.name if ob.active_material else None}")
scene = bpy.context.scene
scene.render.engine = "CYCLES"; scene.cycles.device = "CPU"; scene.cycles.samples = 16
sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN")); sun.data.energy = 3.0
sun.rotation_euler = (0.7, 0.2, 0.6); scene.collection.objects.link(sun)
world = bpy.data.worlds.new("w"); world.use_nodes = True; scene.world = world
world.node_tree.nodes["Background"].inputs[0].default_value = (0.8, 0.8, 0.8, 1); world.node_tree.nodes["Background"].inputs[1].default_value = 0.6
scene.render.resolution_x = scene.render.resolution_y = 320
cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam")); scene.collection.objects.link(cam); scene.camera = cam
def look(loc):
    cam.location = loc; d = Vector((0, 0, 0)) - cam.location
    cam.rotation_euler = d.to_track_quat("-Z", "Y").to_euler()
look((2.2, -2.2, 1.6)); scene.render.filepath = out + "_whole.png"; bpy.ops.render.render(write_still=True)
# cut open: drop everything in front of the plane x = 0 (the viewer side) and look into the cut
bm2 = bmesh.new(); bm2.from_mesh(ob.data)
bmesh.ops.bisect_plane(bm2, geom=bm2.verts[:] + bm2.edges[:] + bm2.faces[:], plane_co=(0, 0, 0), plane_no=(1, 0, 0),
                       clear_outer=True)
bm2.to_mesh(ob.data); ob.data.update()
look((3.0, -0.8, 0.8)); scene.render.filepath = out + "_cut.png"; bpy.ops.render.render(write_still=True)
