"""Tree utilities with MLX's semantics (``mlx.utils``).

A tree is any nesting of lists, tuples and dicts; everything else is a leaf (or
whatever ``is_leaf`` says is one). Paths join keys and list indices with ``"."``.
"""

__all__ = [
    "tree_map",
    "tree_map_with_path",
    "tree_flatten",
    "tree_unflatten",
    "tree_reduce",
    "tree_merge",
]


def tree_map(fn, tree, *rest, is_leaf=None):
    """Apply ``fn`` to the leaves of ``tree`` (and the matching leaves of ``rest``)."""
    if is_leaf is not None and is_leaf(tree):
        return fn(tree, *rest)
    if isinstance(tree, (list, tuple)):
        kind = type(tree)
        return kind(tree_map(fn, child, *(r[i] for r in rest), is_leaf=is_leaf) for i, child in enumerate(tree))
    if isinstance(tree, dict):
        return {k: tree_map(fn, child, *(r[k] for r in rest), is_leaf=is_leaf) for k, child in tree.items()}
    return fn(tree, *rest)


def tree_map_with_path(fn, tree, *rest, is_leaf=None, path=None):
    """Like :func:`tree_map`, but ``fn(path, leaf, *rest_leaves)`` gets the leaf's path."""
    if is_leaf is not None and is_leaf(tree):
        return fn(path, tree, *rest)
    if isinstance(tree, (list, tuple)):
        prefix = f"{path}." if path else ""
        kind = type(tree)
        return kind(
            tree_map_with_path(fn, child, *(r[i] for r in rest), is_leaf=is_leaf, path=f"{prefix}{i}")
            for i, child in enumerate(tree)
        )
    if isinstance(tree, dict):
        prefix = f"{path}." if path else ""
        return {
            k: tree_map_with_path(fn, child, *(r[k] for r in rest), is_leaf=is_leaf, path=f"{prefix}{k}")
            for k, child in tree.items()
        }
    return fn(path, tree, *rest)


def tree_flatten(tree, prefix="", is_leaf=None, destination=None):
    """``[(path, leaf), ...]`` for every leaf (or fill ``destination``, a dict or list)."""
    if destination is None:
        destination = []
    add = destination.update if isinstance(destination, dict) else destination.extend

    def walk(node, path):
        if (is_leaf is None or not is_leaf(node)) and isinstance(node, (list, tuple)):
            for i, child in enumerate(node):
                walk(child, f"{path}.{i}" if path else str(i))
            return
        if (is_leaf is None or not is_leaf(node)) and isinstance(node, dict):
            for k, child in node.items():
                walk(child, f"{path}.{k}" if path else str(k))
            return
        item = (path, node)
        add({path: node} if isinstance(destination, dict) else [item])

    start = prefix[1:] if prefix.startswith(".") else prefix
    walk(tree, start)
    return destination


def tree_unflatten(tree):
    """Rebuild a tree from ``[(path, leaf), ...]`` (or a dict of them), as MLX does.

    A level whose keys all read as distinct integers is a list, ordered by them, whose
    missing indices are ``{}``; any other level is a dict in the order its keys first
    appear. A path that ends where another continues keeps its leaf under the key
    ``""``; the same path twice is an error.
    """
    items = list(tree.items()) if isinstance(tree, dict) else list(tree)
    # Work items: (entries still to place, container, slot in it, path so far): built
    # level by level with a stack so that deep paths need no Python recursion.
    root = [None]
    stack = [(items, root, 0, "")]
    while stack:
        entries, parent, slot, path = stack.pop()
        if len(entries) == 1 and entries[0][0] == "":
            parent[slot] = entries[0][1]
            continue
        if entries and all(key == "" for key, _ in entries):
            raise ValueError(f"[tree_unflatten] The path '{path}' appears {len(entries)} times.")
        children = {}
        for key, value in entries:
            head, _, rest = key.partition(".")
            children.setdefault(head, []).append((rest, value))
        slots = _list_slots(children)
        if slots is None:
            node = dict.fromkeys(children)
            slots = {k: k for k in children}
        else:
            node = [{} for _ in range(max(slots.values(), default=-1) + 1)]
        prefix = f"{path}." if path else ""
        stack.extend((grouped, node, slots[k], prefix + k) for k, grouped in children.items())
        parent[slot] = node
    return root[0]


def _list_slots(children):
    """``{key: position}`` if the keys of a level make a list, else ``None``: every key
    must read as an integer, no two the same. In increasing order each index goes at
    the position it names, or at the end if the list is already longer (so negative
    indices take the next free place, as in MLX)."""
    try:
        indices = {k: int(k) for k in children}
    except ValueError:
        return None
    if len(set(indices.values())) != len(indices):
        return None
    slots, length = {}, 0
    for k, i in sorted(indices.items(), key=lambda kv: kv[1]):
        slots[k] = max(length, i)
        length = slots[k] + 1
    return slots


def tree_reduce(fn, tree, initializer=None, is_leaf=None):
    """Fold ``fn(accumulator, leaf)`` over the leaves, left to right."""
    acc = initializer
    first = initializer is None
    for _, leaf in tree_flatten(tree, is_leaf=is_leaf):
        if first:
            acc, first = leaf, False
        else:
            acc = fn(acc, leaf)
    return acc


def tree_merge(tree_a, tree_b, merge_fn=None):
    """Merge two trees whose leaves do not overlap (``None`` or empty counts as absent);
    ``merge_fn(a, b)`` decides where both have a leaf."""

    def empty(t):
        return t is None or (isinstance(t, (list, tuple, dict)) and len(t) == 0)

    if empty(tree_a):
        return tree_b
    if empty(tree_b):
        return tree_a
    if isinstance(tree_a, (list, tuple)) and isinstance(tree_b, (list, tuple)):
        if type(tree_a) is not type(tree_b):
            raise ValueError("[tree_merge] Cannot merge trees of different container types.")
        n = max(len(tree_a), len(tree_b))
        a = list(tree_a) + [None] * (n - len(tree_a))
        b = list(tree_b) + [None] * (n - len(tree_b))
        return type(tree_a)(tree_merge(x, y, merge_fn) for x, y in zip(a, b))
    if isinstance(tree_a, dict) and isinstance(tree_b, dict):
        keys = list(tree_a) + [k for k in tree_b if k not in tree_a]
        return {k: tree_merge(tree_a.get(k), tree_b.get(k), merge_fn) for k in keys}
    if merge_fn is None:
        raise ValueError("[tree_merge] Trees contain overlapping leaves and no merge_fn was given.")
    return merge_fn(tree_a, tree_b)
