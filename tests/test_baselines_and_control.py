import numpy as np
import pytest
import torch

from core.shape_control import ShapeGenerator, expression_code, interpolate
from core.shape_networks import ExpressionGenerator, IdentityGenerator, ShapeNetConfig, SupervisedAutoEncoder
from train.baselines import BilinearModel, PCAModel
from train.tsne import tsne


def bilinear_data(n_id, n_exp, v=50, seed=0):
    """meshes[i, e] = mean + sum_ab core[a, b] w_id[i, a] w_exp[e, b]; the last two identities are held out."""
    g = np.random.default_rng(seed)
    core = g.standard_normal((4, 3, v * 3))
    w_id, w_exp = g.standard_normal((n_id, 4)), g.standard_normal((n_exp, 3))
    # factors centred over the training identities: then the data minus its mean is exactly bilinear
    w_id -= w_id[:n_id - 2].mean(0)
    w_exp -= w_exp.mean(0)
    x = 5 + np.einsum("abk,ia,eb->iek", core, w_id, w_exp)
    return x.reshape(n_id, n_exp, v, 3).astype(np.float32)


def test_bilinear_model_recovers_held_out_bilinear_meshes():
    data = bilinear_data(12, 6)
    model = BilinearModel(data[:10], id_rank=4, exp_rank=3, iterations=30)
    recon = model.reconstruct(data[10:].reshape(-1, 50, 3))
    np.testing.assert_allclose(recon, data[10:].reshape(-1, 50, 3), atol=1e-3)
    low = BilinearModel(data[:10], id_rank=1, exp_rank=1)
    assert np.abs(low.reconstruct(data[10:].reshape(-1, 50, 3)) - data[10:].reshape(-1, 50, 3)).max() > 0.1


def test_pca_model_is_exact_with_enough_components_and_lossy_without():
    data = torch.from_numpy(bilinear_data(6, 5).reshape(-1, 50, 3))
    torch.testing.assert_close(PCAModel(data, 29).reconstruct(data), data, atol=1e-4, rtol=0)
    assert (PCAModel(data, 2).reconstruct(data) - data).abs().max() > 0.1


def test_expression_codes_mix_and_scale():
    torch.testing.assert_close(expression_code(4, {1: 1.0}, 2.5), torch.tensor([0, 2.5, 0, 0]))
    torch.testing.assert_close(expression_code(4, {0: 0.25, 3: 0.75}), torch.tensor([0.25, 0, 0, 0.75]))
    with pytest.raises(IndexError, match="expression index 4 outside"):
        expression_code(4, {4: 1.0})
    a, b = torch.zeros(3), torch.ones(3)
    torch.testing.assert_close(interpolate(a, b, 0.25), torch.full((3,), 0.25))
    assert interpolate(a, b, torch.tensor([0.0, 0.5, 1.0])).shape == (3, 3)


def test_style_editing_changes_only_the_expression_embedding():
    cfg = ShapeNetConfig(num_vertices=10, num_identities=3, num_expressions=4, code_dim=None, id_encoder=(8,),
                         exp_encoder=(8,), decoder=(8,), id_dim=5, exp_dim=3, z_id_dim=6, z_noise_dim=2,
                         generator=(8,), discriminator=(8,))
    torch.manual_seed(0)
    gen = ShapeGenerator(SupervisedAutoEncoder(cfg), IdentityGenerator(cfg), ExpressionGenerator(cfg))
    z_a, z_b, z_exp, noise = torch.randn(1, 6), torch.randn(1, 6), torch.eye(4)[1:2], torch.randn(1, 2)
    mu_id, mu_exp = gen.embeddings(z_a, z_exp, noise)
    styled_id, styled_exp = gen.embeddings(z_a, z_exp, noise, style_z_id=z_b)
    torch.testing.assert_close(mu_id, styled_id)
    assert (mu_exp - styled_exp).abs().max() > 1e-4
    assert gen(z_a, z_exp, noise).shape == (1, 10, 3)


def test_an_expression_generator_that_sees_identity_gets_the_style_identity_embedding():
    """With expression_sees_identity, G_exp takes G_id's embedding; style editing hands it the style identity's
    (code and embedding), and a call without an embedding is refused rather than guessed."""
    cfg = ShapeNetConfig(num_vertices=10, num_identities=3, num_expressions=4, code_dim=None, id_encoder=(8,),
                         exp_encoder=(8,), decoder=(8,), id_dim=5, exp_dim=3, z_id_dim=6, z_noise_dim=2,
                         generator=(8,), id_generator=(4,), discriminator=(8,), expression_sees_identity=True)
    torch.manual_seed(0)
    g_id, g_exp = IdentityGenerator(cfg), ExpressionGenerator(cfg)
    assert g_id.net[0].out_features == 4 and g_exp.net[0].in_features == 6 + 4 + 2 + 5
    gen = ShapeGenerator(SupervisedAutoEncoder(cfg), g_id, g_exp)
    z_a, z_b, z_exp, noise = torch.randn(1, 6), torch.randn(1, 6), torch.eye(4)[1:2], torch.randn(1, 2)
    with torch.no_grad():
        mu_id, styled = gen.embeddings(z_a, z_exp, noise, style_z_id=z_b)
        torch.testing.assert_close(mu_id, g_id(z_a, noise))
        torch.testing.assert_close(styled, g_exp(z_b, z_exp, noise, g_id(z_b, noise)))
        assert (styled - g_exp(z_b, z_exp, noise, mu_id)).abs().max() > 1e-6  # the embedding is really used
        with pytest.raises(ValueError, match="identity embedding"):
            g_exp(z_a, z_exp, noise)


def test_tsne_separates_clusters():
    g = np.random.default_rng(0)
    x = np.concatenate([g.normal(10 * c, 1, (40, 8)) for c in range(3)])
    y = tsne(x, perplexity=15, iterations=400)
    labels = np.repeat(np.arange(3), 40)
    d = np.linalg.norm(y[:, None] - y[None], axis=2)
    same = labels[:, None] == labels[None]
    assert d[~same].mean() > 3 * d[same].mean()


def test_pca_from_a_coder_fitted_on_the_same_meshes_equals_a_fit():
    from core.shape_networks import MeshCoder
    g = torch.Generator().manual_seed(0)
    data = torch.randn(40, 30, 3, generator=g) * torch.linspace(0.1, 2, 30)[:, None]
    coder = MeshCoder(30, 20).fit(data)
    leading, fitted = PCAModel.leading(coder, 7), PCAModel(data, 7)
    assert leading.components == 7
    torch.testing.assert_close(leading.reconstruct(data), fitted.reconstruct(data), atol=1e-5, rtol=0)
    assert (fitted.reconstruct(data) - data).abs().max() > 0.1  # 7 of 29 components: not the identity
