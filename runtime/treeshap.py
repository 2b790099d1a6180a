"""Exact TreeSHAP from per-leaf tables: LightGBM's ``pred_contrib`` values, computed without its recursion.

LightGBM's ``pred_contrib`` is path-dependent TreeSHAP (Lundberg et al. 2018, Algorithm 2; ``Tree::TreeSHAP``
in LightGBM's ``src/io/tree.cpp``). Take a leaf with value ``v`` and the set ``P`` of distinct features
tested on its path from the root. For each ``j`` in ``P`` the *zero fraction* ``z_j`` is the product, over
the path's edges that test ``j``, of the child's data count over the parent's (LightGBM's
``internal_count``/``leaf_count``: counts, not hessians), and the *one fraction* ``o_j`` is 1 when the
row follows every edge of the path that tests ``j``, else 0 (a feature tested twice is unwound and
extended again with the products, so both are products over its edges). The leaf adds to each ``i``
in ``P``::

    v * (o_i - z_i) * sum over S in (Q minus i) of |S|! (|P| - |S| - 1)! / |P|! * prod over j in P, not in S, not i of z_j

where ``Q`` holds the features with ``o_j = 1`` (a subset ``S`` with some ``o_j = 0`` weighs nothing).
(The path's dummy root element, ``z = o = 1``, changes nothing: summing it in and out of ``S`` gives
the weights above.) A row enters only through the bitmask ``Q``, so each leaf's values for all
``2^|P|`` masks are tabulated once per model (the idea of FastTreeSHAP v2, Yang 2022) and a row costs
its node decisions, one pass down each tree for every leaf's mask and ``|P|`` table reads per leaf. The
bias column is each tree's expected value, ``sum_leaves v * leaf_count / root internal_count``,
summed over the trees as LightGBM sums it.

The tables of a leaf hold ``|P| * 2^|P|`` numbers. A model with a leaf testing more than
``MAX_PATH_FEATURES`` distinct features, tables above ``MAX_TABLE_BYTES`` in all, or anything this
module does not tabulate (several trees per iteration, linear trees, averaged output) keeps
LightGBM's ``pred_contrib`` for the whole model, so the values stay exact either way
(:attr:`TreeShap.fallback` says why). ``pred_contrib`` remains the tests' oracle: every entry equal
within 1e-9 (the sums run in another order, so the last bits differ).

Each row is computed on its own, tree after tree in a fixed order, so a row's values do not depend
on the batch it comes in.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numba as nb
import numpy as np

MAX_PATH_FEATURES = 12
"""Distinct features a leaf's path may test for its table (12: 49,152 numbers, 384 kB); more and the model
keeps LightGBM's pred_contrib."""
MAX_TABLE_BYTES = 256 << 20
"""All leaves' tables together; more and the model keeps LightGBM's pred_contrib."""
SMALL_ROWS = 16
"""LightGBM's pred_contrib costs about 100 times a prediction per row: below this many rows one thread is faster."""
ZERO_THRESHOLD = float(np.float32(1e-35))
"""LightGBM's ``kZeroThreshold`` (a C++ float): inputs this close to zero are read as 0, and a split
whose missing type is Zero sends them the default way."""
NUMERICAL, CATEGORICAL = 0, 1
MISSING = {"None": 0, "Zero": 1, "NaN": 2}

compiled = nb.njit(cache=True, nogil=True)


def pred_contrib(booster: lgb.Booster, matrix: np.ndarray) -> np.ndarray:
    """LightGBM's own TreeSHAP values (the fallback, and the tests' oracle), up to the booster's best iteration."""
    threads = {"num_threads": 1} if len(matrix) < SMALL_ROWS else {}
    return booster.predict(matrix, pred_contrib=True, num_iteration=booster.best_iteration or None, **threads)


@dataclass(frozen=True, eq=False)
class TreeShap:
    """One booster's TreeSHAP tables; call it on a matrix for ``pred_contrib``'s (n, n_features + 1) values.

    Built once per model by :meth:`from_booster` (a bundle builds it when it loads). Nodes are numbered
    across trees (``node_start[t]`` is tree ``t``'s first), in LightGBM's order within a tree, and so are
    leaves (``leaf_start``). A leaf's distinct features are its *slots*, in the order its path first
    tests them; a node's slot is its feature's among its own path's, the same for every leaf below it.
    So one pass down a tree gives every leaf's mask: the child a row does not take clears the node's
    slot bit. A leaf of ``k`` slots has a table of ``2^k`` masks by ``k`` slots.
    """

    booster: lgb.Booster
    n_features: int
    fallback: str | None  # why pred_contrib computes this model's values; None when the tables do
    bias: float
    node_start: np.ndarray
    node_feature: np.ndarray
    node_kind: np.ndarray
    node_threshold: np.ndarray
    node_missing: np.ndarray
    node_default_left: np.ndarray
    node_cats: np.ndarray  # (n_nodes + 1) offsets of each categorical node's bitset in cat_words
    cat_words: np.ndarray
    node_bit: np.ndarray  # 1 << the node's slot
    node_left: np.ndarray  # children as positions in the tree's masks: its nodes, then its leaves
    node_right: np.ndarray
    leaf_start: np.ndarray
    leaf_value: np.ndarray
    leaf_depth: np.ndarray
    slot_start: np.ndarray
    slot_feature: np.ndarray
    table_start: np.ndarray
    table: np.ndarray

    @classmethod
    def from_booster(cls, booster: lgb.Booster, max_path_features: int = MAX_PATH_FEATURES,
                     max_table_bytes: int = MAX_TABLE_BYTES) -> TreeShap:
        """Read the trees LightGBM predicts with (up to ``best_iteration``, as :func:`pred_contrib`) and tabulate them."""
        num_iteration = booster.best_iteration or None
        model = booster.dump_model(num_iteration=num_iteration)
        parts = _Parts(model["max_feature_idx"] + 1)
        why = _unsupported(model)
        if why is None:
            thresholds = _thresholds(booster.model_to_string(num_iteration=num_iteration))
            for tree, exact in zip(model["tree_info"], thresholds, strict=True):
                parts.add_tree(tree["tree_structure"], exact)
            widest = max(parts.widths, default=0)
            size = 8 * sum(k << k for k in parts.widths)
            if widest > max_path_features:
                why = f"a leaf's path tests {widest} distinct features (tables for at most {max_path_features})"
            elif size > max_table_bytes:
                why = f"its tables would take {size:,} bytes (at most {max_table_bytes:,})"
        return parts.explainer(booster, why)

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        """TreeSHAP values of each row, (n, n_features + 1), the last column the bias: those of ``pred_contrib``."""
        if self.fallback is not None:
            return pred_contrib(self.booster, matrix)
        x = self._rows(matrix)
        out = np.zeros((len(x), self.n_features + 1))
        _contributions(x, self._nodes(), self.leaf_start, self.slot_start, self.slot_feature, self.table_start,
                       self.table, out)
        out[:, -1] = self.bias
        return out

    def leaves(self, matrix: np.ndarray) -> np.ndarray:
        """The leaf each row reaches in each tree, (n, n_trees): the one whose mask holds all its slots (for tests)."""
        if self.fallback is not None:
            raise ValueError(f"no tables for this model: {self.fallback}")
        x = self._rows(matrix)
        out = np.empty((len(x), len(self.node_start) - 1), dtype=np.int64)
        _leaves(x, self._nodes(), self.leaf_start, self.slot_start, out)
        return out

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        """The sum of the reached leaves' values, tree after tree: LightGBM's raw score (for tests)."""
        reached = self.leaves(matrix) + self.leaf_start[:-1]
        out = np.zeros(len(reached))
        for t in range(reached.shape[1]):
            out += self.leaf_value[reached[:, t]]
        return out

    def _rows(self, matrix: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:  # noqa: PLR2004
            raise ValueError(f"expected rows of {self.n_features} features, got shape {x.shape}")
        return x

    def _nodes(self) -> tuple:
        return (self.node_start, self.node_feature, self.node_kind, self.node_threshold, self.node_missing,
                self.node_default_left, self.node_cats, self.cat_words, self.node_bit, self.node_left,
                self.node_right)


def _unsupported(model: dict) -> str | None:
    """Why these trees are not tabulated (pred_contrib computes them), or None."""
    if model.get("num_tree_per_iteration", 1) != 1:
        return "several trees per iteration (multiclass)"
    if model.get("average_output"):
        return "averaged output (random forest)"
    if any(t.get("is_linear") or "leaf_coeff" in str(t.get("tree_structure")) for t in model["tree_info"]):
        return "linear trees"
    return None


class _Parts:
    """The arrays of a :class:`TreeShap`, filled tree by tree from ``dump_model``."""

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        self.bias = 0.0
        self.nodes: list[tuple] = []  # (feature, kind, threshold, missing, default_left, categories, slot, left, right)
        self.node_start = [0]
        self.leaf_start = [0]
        self.leaves: list[tuple] = []  # (value, depth, slot features, zero fractions, count)

    @property
    def widths(self) -> list[int]:
        return [len(leaf[2]) for leaf in self.leaves]

    def add_tree(self, root: dict, thresholds: list[float]) -> None:
        """Add one tree of ``dump_model``; ``thresholds``: its nodes' thresholds as the model text holds them."""
        first_leaf = len(self.leaves)
        if "split_index" not in root:  # one leaf: its value is the expected value, nothing to attribute
            self.leaves.append((root["leaf_value"], 0, [], [], 0))
            self.bias += root["leaf_value"]
        else:
            nodes: dict[int, tuple] = {}
            leaves: dict[int, tuple] = {}
            _walk(root, thresholds, [], nodes, leaves)
            nodes = {i: (*n[:7], *(c if c >= 0 else len(nodes) + ~c for c in n[7:])) for i, n in nodes.items()}
            self.nodes.extend(nodes[i] for i in range(len(nodes)))
            self.leaves.extend(leaves[i] for i in range(len(leaves)))
            total = float(root["internal_count"])
            expected = 0.0
            for value, count in ((leaf[0], leaf[4]) for leaf in self.leaves[first_leaf:]):
                expected += (count / total) * value  # Tree::ExpectedValue, in LightGBM's order
            self.bias += expected
        self.node_start.append(len(self.nodes))
        self.leaf_start.append(len(self.leaves))

    def explainer(self, booster: lgb.Booster, why: str | None) -> TreeShap:
        i64 = np.int64
        nodes, leaves = self.nodes, self.leaves
        words = [_bitset(n[5]) for n in nodes]
        node_cats = np.concatenate([[0], np.cumsum([len(w) for w in words])]).astype(i64)
        widths = np.array(self.widths, dtype=i64)
        table_start = np.concatenate([[0], np.cumsum(widths << widths)]).astype(i64)
        slot_start = np.concatenate([[0], np.cumsum(widths)]).astype(i64)
        table = np.zeros(0)
        if why is None:
            table = np.empty(int(table_start[-1]))
            _tabulate(slot_start, np.array([z for leaf in leaves for z in leaf[3]], dtype=np.float64),
                      np.array([leaf[0] for leaf in leaves], dtype=np.float64), table_start, table)
        return TreeShap(
            booster=booster, n_features=self.n_features, fallback=why, bias=self.bias,
            node_start=np.array(self.node_start, dtype=i64),
            node_feature=np.array([n[0] for n in nodes], dtype=i64),
            node_kind=np.array([n[1] for n in nodes], dtype=np.int8),
            node_threshold=np.array([n[2] for n in nodes], dtype=np.float64),
            node_missing=np.array([n[3] for n in nodes], dtype=np.int8),
            node_default_left=np.array([n[4] for n in nodes], dtype=np.bool_),
            node_cats=node_cats,
            cat_words=np.array([w for ws in words for w in ws], dtype=np.uint32),
            node_bit=np.left_shift(1, np.array([n[6] for n in nodes], dtype=i64)),
            node_left=np.array([n[7] for n in nodes], dtype=i64),
            node_right=np.array([n[8] for n in nodes], dtype=i64),
            leaf_start=np.array(self.leaf_start, dtype=i64),
            leaf_value=np.array([leaf[0] for leaf in leaves], dtype=np.float64),
            leaf_depth=np.array([leaf[1] for leaf in leaves], dtype=i64),
            slot_start=slot_start,
            slot_feature=np.array([f for leaf in leaves for f in leaf[2]], dtype=i64),
            table_start=table_start, table=table,
        )


def _walk(node: dict, thresholds: list[float], path: list[tuple], nodes: dict[int, tuple],
          leaves: dict[int, tuple]) -> None:
    """Record ``node`` and below in ``nodes`` and ``leaves`` (by LightGBM's numbers within the tree).

    ``path``: (feature, child count / parent count) of each edge from the root to ``node``.
    """
    features = list(dict.fromkeys(feature for feature, _ in path))  # the slots, in the order first tested
    if "split_index" not in node:
        zeros = [1.0] * len(features)
        for feature, fraction in path:
            slot = features.index(feature)
            zeros[slot] = fraction * zeros[slot]  # LightGBM: the new fraction times the incoming one
        leaves[node["leaf_index"]] = (node["leaf_value"], len(path), features, zeros, node["leaf_count"])
        return
    feature = node["split_feature"]
    slot = features.index(feature) if feature in features else len(features)
    left, right = (_number(node["left_child"]), _number(node["right_child"]))
    if any(0 <= child <= node["split_index"] for child in (left, right)):
        raise ValueError("a node numbered after its child: masks are computed parents first")
    if node["decision_type"] == "==":
        categories = [int(c) for c in str(node["threshold"]).split("||")]
        nodes[node["split_index"]] = (feature, CATEGORICAL, 0.0, 0, False, categories, slot, left, right)
    elif node["decision_type"] == "<=":
        threshold = thresholds[node["split_index"]]
        if not (threshold == node["threshold"] or min(abs(threshold), abs(node["threshold"])) >= 1e300):  # noqa: PLR2004
            raise ValueError(f"model text and dump_model disagree on a threshold: {threshold}, {node['threshold']}")
        nodes[node["split_index"]] = (feature, NUMERICAL, threshold, MISSING[node["missing_type"]],
                                      bool(node["default_left"]), [], slot, left, right)
    else:
        raise ValueError(f"unknown decision type {node['decision_type']!r}")
    parent = float(node["internal_count"])
    for child in (node["left_child"], node["right_child"]):
        count = child["internal_count"] if "split_index" in child else child["leaf_count"]
        _walk(child, thresholds, [*path, (feature, count / parent)], nodes, leaves)


def _number(node: dict) -> int:
    """A child's number within its tree: its split index, or ``~leaf index`` for a leaf."""
    return node["split_index"] if "split_index" in node else ~node["leaf_index"]


def _thresholds(text: str) -> list[list[float]]:
    """Each tree's node thresholds in LightGBM's model text, in node order.

    ``dump_model`` writes a threshold of infinity (a split that sends every number left and NaN
    right) as 1e300, which a value above 1e300 would then cross; the text format writes ``inf``.
    """
    trees: list[list[float]] = []
    for line in text.splitlines():
        if line.startswith("Tree="):
            trees.append([])
        elif line.startswith("threshold=") and trees:
            trees[-1] = [float(t) for t in line.removeprefix("threshold=").split()]
    return trees


def _bitset(categories: list[int]) -> list[int]:
    """LightGBM's category bitset: bit ``c % 32`` of word ``c // 32`` for each category ``c`` that goes left."""
    if not categories:
        return []
    words = [0] * (max(categories) // 32 + 1)
    for c in categories:
        words[c // 32] |= 1 << (c % 32)
    return words


# ---------------------------------------------------------------- compiled: tables, decisions, values
@compiled
def _tabulate(slot_start: np.ndarray, zeros: np.ndarray, values: np.ndarray, table_start: np.ndarray,
              table: np.ndarray) -> None:
    """Fill each leaf's table: entry ``[mask * k + s]`` is what the leaf adds to slot ``s``'s feature for that mask.

    For slot ``s`` and ``R`` = the mask without ``s``, the subset sum ``F(R) = sum over S in R of
    c(|S|) * prod over the slots outside S and s of z`` is a zeta transform (sum over subsets, one pass
    per slot) of ``g(S) = c(|S|) * Z(complement of S and s)``; every term is positive, so the sums
    lose nothing to cancellation. Then the entry is ``v * (1 - z_s) * F(R)`` when the mask holds ``s``
    and ``v * (0 - z_s) * F(R)`` when not.
    """
    for leaf in range(len(values)):
        s0 = slot_start[leaf]
        k = slot_start[leaf + 1] - s0
        if k == 0:
            continue
        v = values[leaf]
        z = zeros[s0:s0 + k]
        n_masks = 1 << k
        full = n_masks - 1
        product = np.empty(n_masks)  # product of z over each mask's slots
        product[0] = 1.0
        for m in range(1, n_masks):
            low = m & -m
            product[m] = product[m ^ low] * z[_bit(low)]
        weight = np.empty(k)  # |S|! (k - |S| - 1)! / k! = 1 / (k * binomial(k - 1, |S|)), exact in floats
        binomial = 1.0
        for m in range(k):
            weight[m] = 1.0 / (k * binomial)
            binomial = binomial * (k - 1 - m) / (m + 1)
        g = np.empty(n_masks)
        base = table_start[leaf]
        for s in range(k):
            own = 1 << s
            rest = full ^ own
            for m in range(n_masks):
                g[m] = 0.0 if m & own else weight[_popcount(m)] * product[rest ^ m]
            for j in range(k):
                bit = 1 << j
                if j == s:
                    continue
                for m in range(n_masks):
                    if (m & bit) and not (m & own):
                        g[m] += g[m ^ bit]
            for m in range(n_masks):
                if not (m & own):
                    table[base + m * k + s] = v * (0.0 - z[s]) * g[m]
                    table[base + (m | own) * k + s] = v * (1.0 - z[s]) * g[m]


@nb.njit(cache=True, nogil=True, inline="always")
def _bit(low: int) -> int:
    b = 0
    while low > 1:
        low >>= 1
        b += 1
    return b


@nb.njit(cache=True, nogil=True, inline="always")
def _popcount(m: int) -> int:
    c = 0
    while m:
        m &= m - 1
        c += 1
    return c


@nb.njit(cache=True, nogil=True, inline="always")
def _goes_left(value: float, kind: int, threshold: float, missing: int, default_left: bool, words: np.ndarray,
               w0: int, w1: int) -> bool:
    """LightGBM's ``Tree::Decision`` for one node (``tree.h``), on a value as its predictor reads it; no branches.

    Numerical: the predictor keeps only ``|x| > kZeroThreshold`` (and NaN) of a dense row, so a tinier
    value is 0; NaN is 0 too unless the missing type is NaN; a missing value (0 for type Zero, NaN for
    type NaN) goes the default way, any other ``x <= threshold`` left. Categorical: NaN goes right, else
    ``static_cast<int>`` (toward zero) and a negative category goes right (as does a value past the int
    range, where the x86 conversion gives INT_MIN), else left iff the category's bit is set.
    Unpredictable branches cost more than the whole decision, hence the selects.
    """
    if kind == CATEGORICAL:
        valid = (value > -1.0) & (value < 2147483648.0)  # False for NaN
        c = np.int64(value if valid else 0.0)
        w = c >> 5
        inside = w < w1 - w0
        word = words[w0 + (w if inside else 0)]
        return valid & inside & (((word >> np.uint32(c & 31)) & np.uint32(1)) == 1)
    nan = value != value
    value = 0.0 if nan | (abs(value) <= ZERO_THRESHOLD) else value
    default = ((missing == 1) & (value == 0.0)) | ((missing == 2) & nan)  # noqa: PLR2004 - Zero, NaN
    return (default & default_left) | (~default & (value <= threshold))


@nb.njit(cache=True, nogil=True, inline="always")
def _decide(x: np.ndarray, nodes: tuple, go: np.ndarray) -> None:
    """Whether row ``x`` goes left at every node of every tree, as 1 or 0 into ``go``."""
    node_feature, node_kind, node_threshold, node_missing = nodes[1], nodes[2], nodes[3], nodes[4]
    node_default_left, node_cats, cat_words = nodes[5], nodes[6], nodes[7]
    for j in range(len(node_feature)):
        go[j] = _goes_left(x[node_feature[j]], node_kind[j], node_threshold[j], node_missing[j], node_default_left[j],
                           cat_words, node_cats[j], node_cats[j + 1])


@nb.njit(cache=True, nogil=True, inline="always")
def _masks(go: np.ndarray, nodes: tuple, t: int, masks: np.ndarray) -> None:
    """Every node's and leaf's mask in tree ``t``, given the row's decisions ``go``, into ``masks``.

    ``masks`` holds the tree's nodes, then its leaves. Down from the root (a node is numbered after its
    parent), the child the row does not take clears the node's slot bit, so a leaf's bit ``s`` stays
    set iff the row follows every edge of its path that tests slot ``s``'s feature.
    """
    node_start, node_bit, node_left, node_right = nodes[0], nodes[8], nodes[9], nodes[10]
    masks[0] = -1  # the root, or the leaf of a tree of one leaf
    first = node_start[t]
    for j in range(first, node_start[t + 1]):
        mask = masks[j - first]
        left = go[j]  # 1 or 0
        masks[node_left[j]] = mask & ~(node_bit[j] & (left - 1))
        masks[node_right[j]] = mask & ~(node_bit[j] & -left)


@nb.njit(cache=True, nogil=True, inline="always")
def _widest(node_start: np.ndarray, leaf_start: np.ndarray) -> int:
    widest = 1
    for t in range(len(node_start) - 1):
        widest = max(widest, node_start[t + 1] - node_start[t] + leaf_start[t + 1] - leaf_start[t])
    return widest


BLOCK = 256
"""Rows whose decisions are kept at once: the values go tree by tree over a block, so a tree's tables stay in cache."""


@compiled
def _contributions(x: np.ndarray, nodes: tuple, leaf_start: np.ndarray, slot_start: np.ndarray,  # noqa: PLR0913
                   slot_feature: np.ndarray, table_start: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    """Add each leaf's table entry for its mask to each of its features.

    Per block of rows, tree after tree over the block; every row still adds its terms in one order,
    tree by tree, leaf by leaf, slot by slot, whatever its batch.
    """
    node_start = nodes[0]
    go = np.empty((min(BLOCK, x.shape[0]), node_start[-1]), dtype=np.int64)
    masks = np.empty(_widest(node_start, leaf_start), dtype=np.int64)
    for b0 in range(0, x.shape[0], BLOCK):
        b1 = min(b0 + BLOCK, x.shape[0])
        for r in range(b0, b1):
            _decide(x[r], nodes, go[r - b0])
        for t in range(len(node_start) - 1):
            n_nodes = node_start[t + 1] - node_start[t]
            for r in range(b0, b1):
                _masks(go[r - b0], nodes, t, masks)
                row = out[r]
                for leaf in range(leaf_start[t], leaf_start[t + 1]):
                    s0 = slot_start[leaf]
                    k = slot_start[leaf + 1] - s0
                    if k == 0:
                        continue
                    mask = masks[n_nodes + leaf - leaf_start[t]] & ((np.int64(1) << k) - 1)
                    at = table_start[leaf] + mask * k
                    for s in range(k):
                        row[slot_feature[s0 + s]] += table[at + s]


@compiled
def _leaves(x: np.ndarray, nodes: tuple, leaf_start: np.ndarray, slot_start: np.ndarray, out: np.ndarray) -> None:
    """The leaf (LightGBM's leaf index) whose mask holds all its slots, per row and tree; -1 if none (never)."""
    node_start = nodes[0]
    go = np.empty(node_start[-1], dtype=np.int64)
    masks = np.empty(_widest(node_start, leaf_start), dtype=np.int64)
    for r in range(x.shape[0]):
        _decide(x[r], nodes, go)
        for t in range(len(node_start) - 1):
            _masks(go, nodes, t, masks)
            n_nodes = node_start[t + 1] - node_start[t]
            out[r, t] = -1
            for leaf in range(leaf_start[t], leaf_start[t + 1]):
                full = (np.int64(1) << (slot_start[leaf + 1] - slot_start[leaf])) - 1
                if (masks[n_nodes + leaf - leaf_start[t]] & full) == full:
                    out[r, t] = leaf - leaf_start[t]
                    break
