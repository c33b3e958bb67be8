"""Command palette: every key binding of the current screen, searchable by what it does."""
from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class ScreenBindings(Provider):
    """Offers each binding of the active screen (and its focused widget) as a command."""

    def _bindings(self):
        seen: set[str] = set()
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.description or binding.action in seen or not active.enabled:
                continue
            seen.add(binding.action)
            yield key, binding.description, binding.action, active.node

    async def discover(self) -> Hits:
        for key, description, action, node in self._bindings():
            yield DiscoveryHit(f"{description} ({key})", partial(node.run_action, action),
                               help=f"Key: {key}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for key, description, action, node in self._bindings():
            label = f"{description} ({key})"
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), partial(node.run_action, action),
                          help=f"Key: {key}")
