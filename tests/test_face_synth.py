import numpy as np
import pytest

from train.data.expressions import EXPRESSION_RECIPES as R
from train.data.face_synth import FaceSynthesizer, StyleConfig
from train.data.jaw import apply_jaw, fit_jaw_rig


@pytest.fixture(scope="module")
def synth(ict):
    return FaceSynthesizer(ict, seed=0)


def offsets(s, identity, name, alpha=1.0):
    ident = s.identity(identity)
    return s.mesh(ident, [(name, R[name], alpha)]) - ident.neutral


def test_same_seed_same_face_other_seed_other_face(ict, synth):
    again = FaceSynthesizer(ict, seed=0)
    other = FaceSynthesizer(ict, seed=1)
    a = synth.mesh(synth.identity(4), [("2_smile", R["2_smile"], 1.3)])
    np.testing.assert_array_equal(a, again.mesh(again.identity(4), [("2_smile", R["2_smile"], 1.3)]))
    assert np.abs(a - other.mesh(other.identity(4), [("2_smile", R["2_smile"], 1.3)])).max() > 0.1


def test_intensity_zero_is_the_identity_neutral(synth):
    ident = synth.identity(2)
    np.testing.assert_array_equal(synth.mesh(ident, [("3_mouth_stretch", R["3_mouth_stretch"], 0.0)]), ident.neutral)


def test_identities_perform_the_same_expression_differently(synth):
    """(a) identity-specific style: the offsets of one expression differ between identities."""
    d0, d1 = offsets(synth, 0, "2_smile"), offsets(synth, 1, "2_smile")
    assert np.linalg.norm(d0 - d1, axis=1).max() > 0.05  # cm
    # and the smile is asymmetric in a way that differs between people
    styles = [synth.expression_style(synth.identity(i), "2_smile", R["2_smile"]).asymmetry for i in range(5)]
    assert len(set(np.round(styles, 6))) == 5


def test_linear_style_shares_offsets_across_identities(ict):
    s = FaceSynthesizer(ict, StyleConfig.linear(), seed=0)
    np.testing.assert_allclose(offsets(s, 0, "16_grin"), offsets(s, 7, "16_grin"), atol=2e-5)
    np.testing.assert_allclose(offsets(s, 0, "16_grin", 2.0), 2 * offsets(s, 0, "16_grin"), atol=5e-5)


def test_expression_is_nonlinear_in_intensity(synth):
    """(b) doubling the intensity does not double the offset."""
    d1, d2 = offsets(synth, 3, "3_mouth_stretch", 1.0), offsets(synth, 3, "3_mouth_stretch", 2.0)
    assert np.linalg.norm(d2 - 2 * d1, axis=1).max() > 0.5  # cm, mostly the jaw arc


def test_jaw_rig_reproduces_ict_at_weight_one_and_moves_on_an_arc(ict):
    j = ict.expression_index("jawOpen")
    rig = fit_jaw_rig("jawOpen", ict.neutral, ict.expression_basis[j], ict.template.region_vertices("teeth"))
    np.testing.assert_allclose(apply_jaw(ict.neutral, [rig], [1.0]), ict.neutral + ict.expression_basis[j], atol=1e-4)
    assert np.degrees(rig.motion.angle) > 10 and abs(rig.motion.axis[0]) > 0.95  # opens about a left-right axis
    teeth = rig.rigid_vertices
    radius = lambda p: np.linalg.norm(np.cross(p[teeth] - rig.motion.pivot, rig.motion.axis), axis=1)  # noqa: E731
    for amount in (0.5, 1.5, 2.5):
        moved = apply_jaw(ict.neutral, [rig], [amount])
        # rigid teeth keep their distance to the hinge axis (an arc), which a straight blendshape line does not
        np.testing.assert_allclose(radius(moved), radius(ict.neutral), atol=0.06)  # the soft residual scales too
        if amount > 1:
            straight = ict.neutral + amount * ict.expression_basis[j]
            assert np.abs(radius(straight) - radius(ict.neutral)).max() > 0.3


def test_negative_intensity_is_refused(synth):
    with pytest.raises(ValueError, match="intensity must be >= 0.*2_smile"):
        synth.shape_weights(synth.identity(0), "2_smile", R["2_smile"], -0.5)
