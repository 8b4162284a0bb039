"""Words the plots write: colorbar labels, titles, cell names."""

import pytest

from captum_higher_order import visualization as V


def test_scale_label_states_sign_convention_absoluteness_and_scale():
    assert V.scale_label("all", "attribution", 2).splitlines() == [
        "attribution: green > 0, red < 0",
        "scaled to [-1, 1], top 2% saturated",
    ]
    assert V.scale_label("absolute_value", outlier_perc=0).splitlines() == [
        "|interaction| (absolute value)",
        "scaled to [0, 1]",
    ]
    assert V.scale_label("negative").startswith("|negative interaction| only")
    assert V.scale_label("positive").startswith("positive interaction only")
    with pytest.raises(ValueError, match="sign must be one of"):
        V.scale_label("abs")


def test_prediction_text_leaves_out_what_is_unknown():
    assert V.prediction_text(5, 3, 0.618) == "label 5, predicted 3 (p = 0.62)"
    assert V.prediction_text(5, 3) == "label 5, predicted 3"
    assert V.prediction_text(prediction=3) == "predicted 3"
    assert V.prediction_text(probability=0.5) == "p = 0.50"
    assert V.prediction_text() == ""


def test_grid_cell_names_are_row_major_coordinates():
    names = V.grid_cell_names((3, 4))
    assert len(names) == 12 and names[0] == "(0, 0)" and names[4 * 2 + 1] == "(2, 1)"
    # (channel, row, col) follows a flattened (C, H, W) layout
    names3 = V.grid_cell_names((2, 3, 4))
    assert names3[1 * 12 + 2 * 4 + 3] == "(1, 2, 3)" and len(names3) == 24
    with pytest.raises(ValueError, match="grid_shape"):
        V.grid_cell_names((4,))
    with pytest.raises(ValueError, match="grid_shape"):
        V.grid_cell_names((0, 3))
