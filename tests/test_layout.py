"""The AEV layout (pyani/_layout.py) against columns written out by hand for ANI-1x."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import get_model

from pyani._layout import AEVLayout

# ANI-1x/1ccx: H C N O; 16 radial shifts; 4 angular shifts x 8 sections = 32 per species pair.
ANI_1X = AEVLayout(n_species=4, n_radial=16, n_angular=32)


def test_ani_1x_blocks():
    assert ANI_1X.length == 384 and ANI_1X.radial_length == 64
    assert ANI_1X.radial(1) == slice(16, 32)
    assert ANI_1X.angular(0, 0) == slice(64, 96)  # HH
    assert ANI_1X.angular(0, 1) == ANI_1X.angular(1, 0) == slice(96, 128)  # HC
    assert ANI_1X.angular(1, 1) == slice(192, 224)  # CC, after HH HC HN HO
    assert ANI_1X.angular(3, 3) == slice(352, 384)  # OO, the last block


def test_columns_of_water_are_its_blocks():
    columns = ANI_1X.columns([3, 0])  # O and H, in any order
    want = np.r_[0:16, 48:64, 64:96, 160:192, 352:384]
    np.testing.assert_array_equal(columns, want)
    assert len(ANI_1X.columns(range(4))) == 384


@pytest.mark.parametrize(("name", "length"), [("ani-1x", 384), ("ani-2x", 1008)])
def test_layout_of_model_metadata(backend, name, length):
    model = get_model(name, backend)
    layout = AEVLayout.of(model.metadata["aev"], len(model.elements))
    assert layout.length == model.metadata["aev"]["length"] == length
    assert model.networks.layout == layout
