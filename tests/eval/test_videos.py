"""Video evaluation on degenerate input."""

import pytest

from mixqsam2.eval.videos import evaluate_videos, first_mask_baseline


@pytest.mark.parametrize("score", [lambda videos: evaluate_videos(None, videos), first_mask_baseline])
def test_no_videos_is_a_value_error_not_a_nan(score):
    with pytest.raises(ValueError, match="no videos"):
        score([])
