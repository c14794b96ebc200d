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


def test_gain_depends_on_face_shape(ict):
    """The shape-dependent part of the style: with the random draws off, an identity's gain for an expression is
    1 + c * tanh(w_id . u_expr), so it follows the identity weights along that expression's direction."""
    s = FaceSynthesizer(ict, StyleConfig(0.0, 0.3, 0.0, 0.0, 0.0, False, False, False), seed=0)
    gains, projections = [], []
    for i in range(30):
        ident = s.identity(i)
        gains.append(s.expression_style(ident, "2_smile", R["2_smile"]).gain)
        d1 = offsets(s, i, "2_smile")
        d_ref = offsets(FaceSynthesizer(ict, StyleConfig.linear(), seed=0), i, "2_smile")
        np.testing.assert_allclose(d1, gains[-1] * d_ref, atol=1e-4)  # the gain scales the whole expression
        projections.append(np.arctanh((gains[-1] - 1) / 0.3))
    assert np.std(gains) > 0.05
    # projections onto one fixed direction are a linear function of the weights: recover it by least squares
    w = np.stack([s.identity(i).weights for i in range(30)]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(w, np.array(projections), rcond=None)
    np.testing.assert_allclose(w @ coef, projections, atol=1e-6)


def test_expression_offsets_scale_with_face_size(ict):
    s = FaceSynthesizer(ict, StyleConfig(0.0, 0.0, 0.0, 0.0, 0.0, True, True, False), seed=0)
    ref = FaceSynthesizer(ict, StyleConfig(0.0, 0.0, 0.0, 0.0, 0.0, False, True, False), seed=0)
    big = max(range(20), key=lambda i: abs(s.identity(i).size_scale - 1))
    scale = s.identity(big).size_scale
    assert abs(scale - 1) > 0.05
    np.testing.assert_allclose(offsets(s, big, "2_smile"), scale * offsets(ref, big, "2_smile"), atol=1e-4)
    # The jaw turns by the same angle on any face (the geometry sets how far the chin travels), but its
    # soft-tissue residual scales with the face.
    j = ict.expression_index("jawOpen")
    rig = fit_jaw_rig("jawOpen", ict.neutral, ict.expression_basis[j], ict.template.region_vertices("teeth"))
    grown = apply_jaw(ict.neutral, [rig], [1.0], scale=scale) - apply_jaw(ict.neutral, [rig], [1.0])
    np.testing.assert_allclose(grown, (scale - 1) * rig.residual, atol=1e-5)
    assert np.abs(rig.residual).max() > 0.5


def test_jaw_hinge_moves_with_the_identity(ict, synth):
    shifts = [np.linalg.norm(synth.identity(i).hinge_offset) for i in range(10)]
    assert max(shifts) > 0.1  # cm
    ident = synth.identity(int(np.argmax(shifts)))
    moved = synth.mesh(ident, [("3_mouth_stretch", R["3_mouth_stretch"], 1.0)])
    import dataclasses
    pinned = synth.mesh(dataclasses.replace(ident, hinge_offset=np.zeros(3)),
                        [("3_mouth_stretch", R["3_mouth_stretch"], 1.0)])
    assert np.abs(moved - pinned).max() > 0.05


def test_batched_and_single_meshes_are_the_same_bits(synth):
    ident = synth.identity(5)
    names = ["2_smile", "3_mouth_stretch", "16_grin"]
    batch = synth.mesh_from_weights(ident, np.stack([synth.shape_weights(ident, n, R[n], 1.0) for n in names]))
    for k, n in enumerate(names):
        np.testing.assert_array_equal(batch[k], synth.mesh(ident, [(n, R[n], 1.0)]))


def test_same_bits_whatever_the_thread_count():
    import hashlib
    import os
    import subprocess
    import sys
    code = ("import hashlib; from train.data.ict import load_ict_model; from train.data.face_synth import "
            "FaceSynthesizer; from train.data.expressions import EXPRESSION_RECIPES as R; s = FaceSynthesizer("
            "load_ict_model(), seed=0); i = s.identity(3); print(hashlib.sha256(s.mesh(i, [('16_grin', "
            "R['16_grin'], 1.4)]).tobytes()).hexdigest())")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digests = set()
    for threads in ("1", "2"):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads, PYTHONPATH=root)
        digests.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True).stdout.strip())
    assert len(digests) == 1 and len(hashlib.sha256().hexdigest()) == len(digests.pop())
