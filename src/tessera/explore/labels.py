"""Point labels that do not overlap: each label goes where it covers no other label and no point.

:func:`place_labels` tries, for each labelled point, positions around it at growing distances
(right, above, left, below and the diagonals; a thin leader line beyond the first ring) and
keeps the first whose text box lies inside the axes and overlaps no label placed before, no
marker of the axes and not the legend. Boxes are measured by the renderer in display pixels,
so the result holds for the saved figure at its size and resolution (call it after
``tight_layout``). When no position is free, the cheapest is used: covering a marker costs 1,
another label 4, leaving the axes 8.
"""

from __future__ import annotations

__all__ = ["place_labels", "MARKER_HALF_PX"]

#: Half the side of the box a marker occupies, in display pixels.
MARKER_HALF_PX = 6.0

_RINGS = (7, 16, 28, 42, 60, 80)
#: Costs of a position that covers another label, or leaves the axes, against one marker.
_LABEL_COST, _OUTSIDE_COST = 4, 8
_DIRECTIONS = ((1, 0.4), (0, 1), (-1, 0.4), (0, -1), (1, 1), (-1, 1), (-1, -1), (1, -1))


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _obstacles(ax):
    from matplotlib.transforms import Bbox
    boxes = []
    for collection in ax.collections:
        offsets = collection.get_offset_transform().transform(collection.get_offsets())
        for x, y in offsets:
            boxes.append(Bbox([[x - MARKER_HALF_PX, y - MARKER_HALF_PX],
                               [x + MARKER_HALF_PX, y + MARKER_HALF_PX]]))
    return boxes


def place_labels(ax, items, *, fontsize=7):
    """Label the points ``items`` (``(x, y, text)`` in data coordinates) of ``ax``.

    Returns the text boxes placed (``matplotlib.transforms.Bbox`` in display pixels), one per
    item, in the order of ``items``.
    """
    from matplotlib.text import Text
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    area = ax.get_window_extent(renderer)
    blocked = _obstacles(ax)
    legend = ax.get_legend()
    if legend is not None:
        blocked.append(legend.get_window_extent(renderer))
    placed = []
    for x, y, text in items:
        best = None
        for ring in _RINGS:
            for dx, dy in _DIRECTIONS:
                annotation = ax.annotate(
                    text, (x, y), xytext=(dx * ring, dy * ring), textcoords="offset points",
                    fontsize=fontsize, ha="left" if dx > 0 else "right" if dx < 0 else "center",
                    va="bottom" if dy > 0 else "top" if dy < 0 else "center", zorder=4,
                    bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.7),
                    arrowprops=dict(arrowstyle="-", lw=0.5, color="0.4") if ring > _RINGS[0]
                    else None)
                annotation.update_positions(renderer)
                box = Text.get_window_extent(annotation, renderer)     # the text, not the line
                inside = area.x0 <= box.x0 and box.x1 <= area.x1 and area.y0 <= box.y0 \
                    and box.y1 <= area.y1
                hits = (sum(_overlaps(box, other) for other in blocked)
                        + _LABEL_COST * sum(_overlaps(box, other) for other in placed)
                        + _OUTSIDE_COST * (not inside))
                if best is None or hits < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (hits, annotation, box)
                else:
                    annotation.remove()
                if hits == 0:
                    break
            if best[0] == 0:
                break
        placed.append(best[2])
    return placed
