"""Custom nodes: registry nodes (Comfy Registry zips), git nodes (any git URL), and development
nodes (a directory the user owns: never deleted, only renamed NAME.disabled).

Filesystem first: nothing is overwritten or deleted without --force, and every change is
undone if a later step (resolution by uv, a download) fails.

  spec        what a node is (NodeSpec, identifiers, its manifest entry, state files)
  resolve     registry / git / dev identifier -> exact NodeSpec
  safety      conflicts, .comfydock_ignore, local-change checks, trash
  scan        requirements -> the node's dependency group
  cache       the workspace's node cache (downloads, clones, safe unpacking)
  operations  add / remove / update / list
"""
