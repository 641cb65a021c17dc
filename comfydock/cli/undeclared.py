"""Rendering undeclared imports (status, node check) and ComfyUI's fills (create, comfyui update)."""

from __future__ import annotations

from rich.markup import escape as e


def _sites(imports: list[dict]) -> str:
    shown = []
    for u in imports:
        more = f" and {u['more']} more" if u.get("more") else ""
        shown.append(f"{u['module']} ({u['where']}{more})")
    return ", ".join(shown)


def render_undeclared_imports(app, report: dict) -> None:
    """status: one line per owner (ComfyUI or a node) whose code imports what nothing provides."""
    for owner in report.get("owners", []):
        who = "ComfyUI" if owner["owner"] == "comfyui" else f"Custom node {owner['id']}"
        app.out.print(
            f"[yellow]{e(who)} imports what nothing installs:[/] {e(_sites(owner['imports']))}; "
            f"add it with '{e(owner['fix'])}'"
        )


def render_node_undeclared(app, row: dict) -> None:
    """node check: a node's undeclared imports under its line."""
    if row.get("undeclared_imports"):
        app.out.print(
            f"    [yellow]imports what nothing installs:[/] {e(_sites(row['undeclared_imports']))}; "
            f"add it with '{e(row['undeclared_fix'])}'"
        )


def render_comfyui_fills(app, fills: list | None) -> None:
    """create / comfyui update: what was added to comfyui-core, and why."""
    for fill in fills or []:
        app.say(f"Added {e(fill['package'])} to comfyui-core ({e(fill['reason'])})")


def render_fills_after_change(app, filled: dict | None) -> None:
    """node add, py add/remove, constraint ...: ComfyUI's imports the change stopped providing."""
    if not filled:
        return
    render_comfyui_fills(app, filled["added"])
    if filled["failed"]:
        app.warn_text(filled["failed"])
