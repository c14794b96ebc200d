"""Deformation transfer of ICT's blendshapes: exact on the template, equivariant to scale and rigid motion, and
what it does to the synthetic identities' expressions (identity-specific, nothing torn)."""
import numpy as np
import pytest

from train.data.deformation_transfer import DeformationTransfer
from train.data.expressions import EXPRESSION_RECIPES as R
from train.data.face_synth import ATTACHED_REGIONS, SKIN_REGIONS, FaceSynthesizer, StyleConfig

SHAPES = ("mouthSmile_L", "mouthPucker", "jawOpen", "eyeBlink_R", "browInnerUp_L", "cheekPuff_L")


@pytest.fixture(scope="module")
def transfer(ict):
    t = ict.template
    skin = np.concatenate([t.region_vertices(r) for r in SKIN_REGIONS])
    triangles, _ = t.triangles(np.concatenate([t.region_polygons(r) for r in SKIN_REGIONS]))
    static = np.abs(ict.expression_basis[:, skin]).max(axis=(0, 2)) == 0
    dt = DeformationTransfer(ict.neutral, triangles, skin, static)
    basis = ict.expression_basis[[ict.expression_index(n) for n in SHAPES]].astype(np.float64)
    return dt, dt.source_gradients(basis), basis[:, skin]


def test_the_template_onto_itself_reproduces_ict(ict, transfer):
    dt, gradients, basis = transfer
    out = dt.transfer(ict.neutral, gradients)
    np.testing.assert_allclose(out, basis, atol=1e-9)  # cm; measured 8e-14


def test_a_scaled_and_moved_face_gets_scaled_offsets(ict, transfer):
    dt, gradients, basis = transfer
    out = dt.transfer(1.2 * ict.neutral.astype(np.float64) + np.array([3.0, -2.0, 1.0]), gradients)
    np.testing.assert_allclose(out, 1.2 * basis, atol=1e-6)


def test_a_rotated_face_gets_rotated_offsets(ict, transfer):
    dt, gradients, basis = transfer
    a, b = 0.5, -0.3
    rot = (np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
           @ np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]]))
    out = dt.transfer(ict.neutral.astype(np.float64) @ rot.T, gradients)
    np.testing.assert_allclose(out, basis @ rot.T, atol=1e-9)


def test_another_face_gets_offsets_of_its_own(ict, transfer):
    """On a real identity the transferred offsets differ from ICT's by a fair fraction of the signal, and not as
    a uniform scale (which the old size factor already gave)."""
    dt, gradients, basis = transfer
    neutral = ict.identity_shape(np.random.default_rng(5).standard_normal(100))
    out = dt.transfer(neutral, gradients)
    k = SHAPES.index("mouthPucker")
    diff, signal = (np.linalg.norm(x, axis=1).mean() for x in (out[k] - basis[k], basis[k]))
    assert 0.03 < diff / signal < 0.5
    best_scale = (out[k] * basis[k]).sum() / (basis[k] ** 2).sum()
    assert np.linalg.norm(out[k] - best_scale * basis[k], axis=1).mean() > 0.5 * diff


def test_nothing_tears_eyelids_keep_their_lashes(ict):
    """Disconnected parts stay where they belong: lashes move with the lid under them, upper teeth and eyeballs
    do not move, lower teeth move rigidly with the jaw."""
    s = FaceSynthesizer(ict, StyleConfig(), seed=0)
    old = FaceSynthesizer(ict, StyleConfig(deformation_transfer=False), seed=0)
    t = ict.template
    _, _, attached, follows = s._transfer
    for i in (0, 1):
        ident = s.identity(i)
        for name in ("18_eye_closed", "3_mouth_stretch", "2_smile"):
            new = s.mesh(ident, [(name, R[name], 1.0)]).astype(np.float64)
            ref = old.mesh(ident, [(name, R[name], 1.0)]).astype(np.float64)
            # an attached vertex keeps its place relative to the skin vertex it rests on, as ICT's rig has it
            gap_new = new[attached] - new[follows]
            gap_old = ref[attached] - ref[follows]
            assert np.abs(gap_new - gap_old).max() < 1e-4
            for region in ("eyeball_left", "eyeball_right"):
                v = t.region_vertices(region)
                np.testing.assert_array_equal(new[v], ident.neutral[v].astype(np.float64))
            teeth = t.region_vertices("teeth")
            np.testing.assert_allclose(new[teeth], ref[teeth], atol=1e-5)  # the jaw rig moves them the same way


def test_transfer_is_on_by_default_and_selectable(ict):
    assert StyleConfig().deformation_transfer and not StyleConfig.linear().deformation_transfer
    assert not StyleConfig.from_dict({"deformation_transfer": False}).deformation_transfer
    on = FaceSynthesizer(ict, StyleConfig(), seed=0)
    off = FaceSynthesizer(ict, StyleConfig(deformation_transfer=False), seed=0)
    ident = on.identity(2)
    a = on.mesh(ident, [("12_lip_puckerer", R["12_lip_puckerer"], 1.0)])
    b = off.mesh(ident, [("12_lip_puckerer", R["12_lip_puckerer"], 1.0)])
    assert np.linalg.norm(a - b, axis=1)[:9409].mean() > 0.01  # cm
    assert set(ATTACHED_REGIONS).isdisjoint(SKIN_REGIONS)
