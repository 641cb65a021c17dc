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

from comfydock.nodes.operations import (
    NodeChange,
    add_nodes,
    list_nodes,
    remove_nodes,
    untracked_directories,
    update_node,
)
from comfydock.nodes.resolve import registry_client, resolve, resolve_git, resolve_registry
from comfydock.nodes.safety import NodeConflict, check_conflict, is_ignored, local_changes, trash
from comfydock.nodes.scan import apply_scan, requirements_digest, scan_node
from comfydock.nodes.spec import (
    NodeSpec,
    group_name,
    install_marker,
    normalize_git_url,
    reqs_file,
    split_ref,
    tracked_node,
    tracked_nodes,
)

__all__ = [
    "NodeChange",
    "NodeConflict",
    "NodeSpec",
    "add_nodes",
    "apply_scan",
    "check_conflict",
    "group_name",
    "install_marker",
    "is_ignored",
    "list_nodes",
    "local_changes",
    "normalize_git_url",
    "registry_client",
    "remove_nodes",
    "reqs_file",
    "requirements_digest",
    "resolve",
    "resolve_git",
    "resolve_registry",
    "scan_node",
    "split_ref",
    "tracked_node",
    "tracked_nodes",
    "trash",
    "untracked_directories",
    "update_node",
]
