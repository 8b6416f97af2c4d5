import io
import pickle

import numpy as np
import pytest
import torch

from sklearn_piaa import MetaAestheticRegressor

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_head_only_on_cuda(ratings, tiny_params):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**{**tiny_params, "device": "cuda"}).fit(X, y, groups=groups)
    assert next(meta.prior_net_.module_.parameters()).is_cuda
    net = meta.personalize(X[:10], y[:10])
    assert net.predict(X[:20]).shape == (20,)
    cpu = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    # Same algorithm on both devices: predictions agree to GPU float tolerance.
    np.testing.assert_allclose(meta.predict(X[:20]), cpu.predict(X[:20]), atol=5e-2)


def test_embedding_on_cuda_matches_the_cpu(image_files):
    import copy

    from sklearn_piaa import embed_images
    from sklearn_piaa.nn import load_backbone

    backbone = load_backbone("tiny_cnn")
    # on a GPU the next batch is decoded while this one runs
    gpu = embed_images(image_files, copy.deepcopy(backbone), batch_size=5, device="cuda")
    cpu = embed_images(image_files, backbone, batch_size=5)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-4)


def test_whole_network_on_cuda(image_files):
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    groups = np.repeat(["a", "b"], 6)
    meta = MetaAestheticRegressor(backbone="tiny_cnn", train_backbone=True, hidden_sizes=(8,),
                                  n_iterations=3, support_size=4, query_size=2,
                                  finetune_epochs=2, device="cuda", random_state=0)
    meta.fit(image_files, y, groups=groups)
    net = meta.personalize(image_files[:6], y[:6])
    assert net.predict(image_files).shape == (12,)
    buf = io.BytesIO()
    pickle.dump(meta, buf)
    assert pickle.loads(buf.getvalue()).predict(image_files).shape == (12,)


def test_pickling_keeps_the_live_backbone_on_cuda(image_files):
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2,
                                  support_size=4, query_size=2, finetune_epochs=2,
                                  device="cuda", random_state=0)
    meta.fit(image_files, y, groups=np.repeat(["a", "b"], 6))
    copy = pickle.loads(pickle.dumps(meta))
    assert next(meta.input_.backbone.parameters()).is_cuda  # was moved to the CPU
    np.testing.assert_allclose(copy.predict(image_files), meta.predict(image_files),
                               atol=1e-5)


def test_whole_network_mixed_precision_on_cuda(image_files):
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    groups = np.repeat(["a", "b"], 6)
    meta = MetaAestheticRegressor(backbone="tiny_cnn", train_backbone=True, hidden_sizes=(8,),
                                  n_iterations=3, support_size=4, query_size=2,
                                  finetune_epochs=2, device="cuda", mixed_precision=True,
                                  random_state=0)
    meta.fit(image_files, y, groups=groups)
    net = meta.personalize(image_files[:6], y[:6])
    pred = net.predict(image_files)
    assert pred.dtype == np.float32 and np.isfinite(pred).all()


def test_hand_written_head_gradient_on_cuda():
    from sklearn_piaa.nn import AestheticHead, AestheticLoss
    from sklearn_piaa.nn.head_grad import HeadGradient

    head = AestheticHead(16, (12, 8), dropout=0.0).double().cuda().train()
    ref = AestheticHead(16, (12, 8), dropout=0.0).double().cuda().train()
    ref.load_state_dict(head.state_dict())
    x = torch.randn(10, 16, dtype=torch.float64, device="cuda")
    y = torch.rand(10, dtype=torch.float64, device="cuda") * 4 + 1
    HeadGradient(head).loss_backward(x, y, AestheticLoss())
    AestheticLoss()(ref(x), y).backward()
    for p, q in zip(head.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12)


def test_stacked_head_meta_training_on_cuda():
    import copy

    from sklearn_piaa.meta import BLG
    from sklearn_piaa.nn import AestheticHead

    head = AestheticHead(16, (12, 8), dropout=0.0).double().train()
    g = torch.Generator().manual_seed(0)

    def part(n):
        return (torch.randn(n, 16, generator=g).double(),
                torch.rand(n, generator=g).double() * 4 + 1)
    tasks = [(part(12), part(5)) for _ in range(4)]
    priors = []
    for device, stack in (("cuda", 4), ("cpu", 1)):
        prior, learner = copy.deepcopy(head).to(device), copy.deepcopy(head).to(device)
        algo = BLG(inner_lr=1e-2, inner_steps=3, outer_lr=0.3)
        algo.max_stacked = stack  # all four stacked on the GPU, task by task on the CPU
        algo.step(prior, learner, [tuple((x.to(device), y.to(device)) for x, y in t)
                                   for t in tasks])
        priors.append({k: v.cpu() for k, v in prior.state_dict().items()})
    for key, value in priors[0].items():
        atol = 1e-7 if key.endswith(("0.bias", "4.bias", "running_mean")) else 1e-10
        torch.testing.assert_close(value, priors[1][key], rtol=1e-9, atol=atol, msg=key)


def test_a_model_pickled_on_cuda_loads_where_there_is_no_gpu(ratings, tiny_params, tmp_path):
    import os
    import subprocess
    import sys

    X, y, groups = ratings
    meta = MetaAestheticRegressor(**{**tiny_params, "device": "cuda"}).fit(X, y, groups=groups)
    net = meta.personalize(X[:10], y[:10])
    (tmp_path / "net.pkl").write_bytes(pickle.dumps(net))
    assert next(net.module.parameters()).is_cuda  # pickling left the live net in place
    np.save(tmp_path / "X.npy", X[:20])
    code = ("import pickle, sys, numpy as np; net = pickle.load(open(sys.argv[1], 'rb')); "
            "assert str(net.device) == 'cpu'; "
            "np.save(sys.argv[3], net.predict(np.load(sys.argv[2])))")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "net.pkl"),
                    str(tmp_path / "X.npy"), str(tmp_path / "out.npy")],
                   env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, check=True)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), net.predict(X[:20]), atol=1e-4)


def test_a_deep_copy_of_a_model_on_cuda_stays_on_cuda(image_files):
    import copy

    from sklearn_piaa.nn import load_backbone

    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    meta = MetaAestheticRegressor(backbone=load_backbone("tiny_cnn").cuda(), hidden_sizes=(8,),
                                  n_iterations=2, support_size=4, query_size=2,
                                  finetune_epochs=1, device="cuda", random_state=0)
    meta.fit(image_files, y, groups=np.repeat(["a", "b"], 6))
    copied = copy.deepcopy(meta)
    for module in (copied.backbone, copied._fitted_architecture_["backbone"],
                   copied.prior_net_.module_):
        assert all(p.is_cuda for p in module.parameters())
    np.testing.assert_allclose(copied.predict(image_files), meta.predict(image_files),
                               atol=1e-5)


def test_a_backbone_shared_on_cuda_is_found_under_device_cuda():
    # A backbone on device="cuda" reports "cuda:0": load_model's lookup under "cuda" never
    # found it, and every load built the backbone again.
    from sklearn_piaa._features import loaded_backbone, shared_backbone
    from sklearn_piaa.nn import load_backbone

    backbone = shared_backbone(load_backbone("tiny_cnn").to("cuda"), "a test's fingerprint")
    assert loaded_backbone("a test's fingerprint", "tiny_cnn", "cuda") is backbone
    assert loaded_backbone("a test's fingerprint", "tiny_cnn", "cuda:0") is backbone
