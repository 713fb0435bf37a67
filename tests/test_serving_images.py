"""Users' images for `ssgan predict`: a bad file is named, never Pillow's in-memory buffer; --skip-bad skips it."""
import numpy as np
import pytest
from PIL import Image

from ssgan.data.catalog import DataSourceError
from ssgan.data.inputs import read_images


def _folder(tmp_path):
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "notes.png").write_text("not an image")
    return tmp_path


def test_a_non_image_is_one_error_naming_the_file(tmp_path):
    with pytest.raises(DataSourceError) as err:
        read_images([str(_folder(tmp_path))], (8, 8, 1))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'notes.png'}: not a decodable image") and "BytesIO" not in message


def test_skipped_files_are_reported_and_the_rest_read(tmp_path):
    skipped = []
    names, images = read_images([str(_folder(tmp_path))], (8, 8, 1), skipped)
    assert names == [str(tmp_path / "good.png")] and images.shape == (1, 8, 8, 1) and images.max() == 200
    assert len(skipped) == 1 and skipped[0].startswith(str(tmp_path / "notes.png"))
    with pytest.raises(DataSourceError, match="no image could be read"):
        read_images([str(tmp_path / "notes.png")], (8, 8, 1), [])
