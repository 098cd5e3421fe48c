"""YAML as users write it: PyYAML's safe loader, except that a key given twice in one mapping is an error.

PyYAML silently keeps the last of two equal keys, so a space with `lr:` written twice would search a
value the user may not have meant; here it is a `yaml.YAMLError` naming the key and its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (a key may appear once in a mapping)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """`yaml.safe_load` of a file, refusing duplicate keys (raises `yaml.YAMLError` naming the line, OSError)."""
    with open(path) as handle:
        return yaml.load(handle, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
