"""Slice categories (data.category): writing and parsing "brain_x4", and reading organ and acceleration from names."""

import pytest

from data import DataFormatError, make_mask
from data.category import (
    ACCELERATIONS,
    CATEGORIES,
    ORGANS,
    Category,
    category_of,
    named_acceleration,
    named_organ,
)


def test_str_and_parse_are_inverse_over_every_category():
    """str(Category) writes "<organ>_x<acceleration>" and Category.parse reads it back, for every category."""
    assert CATEGORIES == ("brain_x4", "brain_x8", "knee_x4", "knee_x8")
    for organ in ORGANS:
        for acceleration in ACCELERATIONS:
            category = Category(organ, acceleration)
            assert Category.parse(str(category)) == category
    organ, acceleration = Category.parse("knee_x8")  # unpacks like the (organ, acceleration) pairs it replaces
    assert (organ, acceleration) == ("knee", 8)
    assert f"{Category('brain', 4)}_w396" == "brain_x4_w396"


@pytest.mark.parametrize("text", ["liver_x4", "brain4", "brain_x", "Brain_x4", "brain_x4_w396", "x4", ""])
def test_parse_rejects_unknown_organs_and_malformed_text(text):
    """Anything but a known organ, "_x" and digits is a ValueError that says what a category looks like."""
    with pytest.raises(ValueError, match="category: expected '<organ>_x<acceleration>'.*brain_x4"):
        Category.parse(text)


def test_names_state_organ_and_acceleration_as_whole_tokens():
    """Tokens are the stem split on "_", "-" and "."; a name that states neither gives None."""
    assert named_organ("/data/val/kspace/brain_acc4_3.h5") == "brain"
    assert named_organ("file_brain_AXT2_200_2000019.h5") == "brain"  # case-insensitive
    assert named_organ("knee-acc8.h5") == "knee"
    assert named_organ("file1000001.h5") is None and named_organ("brainy_1.h5") is None
    assert named_acceleration("brain_acc4_3.h5") == 4 and named_acceleration("knee-ACC8.h5") == 8
    assert named_acceleration("brain_test1.h5") is None and named_acceleration("brain_xacc4.h5") is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("brain_knee_1.h5", "brain_knee_1.h5: file name names more than one organ"),
        ("brain_acc4_acc8.h5", "brain_acc4_acc8.h5: file name names more than one acceleration"),
        ("brain_acc5_1.h5", r"brain_acc5_1.h5: acceleration acc5 is not one of \(4, 8\)"),
    ],
)
def test_ambiguous_or_unknown_names_are_data_format_errors(name, message):
    """A name that states two organs, two accelerations or an unknown one is refused, naming the file."""
    with pytest.raises(DataFormatError, match=message):
        category_of(name, make_mask("equispaced", 396, 4, 0.08, 0))


def test_category_of_takes_the_name_first_then_the_mask_and_the_default():
    """The name's tokens win; the mask gives a missing acceleration (an equispaced R 8 mask is x8), the
    default a missing organ; with neither an organ in the name nor a default it is a DataFormatError."""
    r8 = make_mask("equispaced", 396, 8, 0.08, 0)
    assert category_of("knee_acc4_12.h5", r8) == "knee_x4"
    assert category_of("brain_test1.h5", r8) == "brain_x8"
    assert category_of("acc4_1.h5", r8, organ_default="knee") == "knee_x4"
    with pytest.raises(DataFormatError, match="scan.h5: file name names no organ"):
        category_of("scan.h5", r8)
