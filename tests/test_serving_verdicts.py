"""Issue 26 items 4, 5 and 7: a "does not fit" message lists every dtype and remedy that fits; unusable plans are
flagged; remedies only where the model supports them; fp8 without fp8 tensor cores; checkpoint notes in launch
scripts; names of config.json models; plurals."""

from __future__ import annotations

import pytest

from planner.cost.advice import dtype_offers, suggestions
from planner.cost.constants import DEFAULT
from planner.hardware import load_topology
from planner.hardware.gpus import GPU_SPECS
from planner.plan import Workload


def test_gpt_oss_on_one_h100_names_mxfp4_and_int4(cli):
    """gpt-oss-120b in bf16 is 233.7 GB; its MXFP4 checkpoint (experts at 4.25 bits) is 65.2 GB and int4 62.0 GB, both
    under one H100's 76.3 GB usable; fp8 (118.0 GB) is still short. Before issue 26 the message offered only fp8
    ("still short") and 4 GPUs."""
    code, _, err = cli("solve", "-m", "gpt-oss-120b", "-t", "1xh100", "--weight-dtype", "bf16")
    assert code == 2
    fits = next(line for line in err.splitlines() if "fits with" in line)
    assert "--weight-dtype mxfp4 (weights 65.2 GB)" in fits and "--weight-dtype int4 (weights 62.0 GB)" in fits
    assert "--weight-dtype fp8" not in fits
    assert any("still short with --weight-dtype fp8 (weights 118.0 GB" in line for line in err.splitlines())
    assert "1 x H100-SXM5-80GB at int4" in err and "on 1 GPU of 1xh100" in err and "1 GPUs" not in err
    assert "--offload" in err and "no host-memory tier" in err


def test_offload_offered_where_the_machine_has_host_memory(profiles):
    """Llama-3.1-405B on 4xl40s: no 4-bit dtype fits 171 GB of HBM (int4 215.5 GB), but the 1 TB host tier holds
    the rest, so --offload is offered as fitting."""
    p, topo = profiles("llama-405b"), load_topology("4xl40s")
    lines = suggestions(p, topo, [0, 1, 2, 3], Workload(), DEFAULT)
    assert not any(line.startswith("fits with") for line in lines)
    assert any(line.startswith("--offload") and "1.0 TB on 1 node; fits" in line for line in lines)


def test_dtype_offers_follow_the_gpu_and_the_model(profiles):
    """mxfp4 quantises routed experts only: offered for MoE models; nvfp4 only where the GPU has FP4 tensor cores
    (B200, not H100); fp8 on A100 is offered and said to be weight-only."""
    moe, dense = profiles("gpt-oss-120b"), profiles("llama-70b")
    h100, b200 = GPU_SPECS["H100-SXM5-80GB"], GPU_SPECS["B200-180GB"]
    assert dtype_offers(moe, h100, "bf16") == ["fp8", "int4", "mxfp4"]
    assert dtype_offers(dense, h100, "bf16") == ["fp8", "int4"]
    assert dtype_offers(moe, b200, "bf16") == ["fp8", "int4", "mxfp4", "nvfp4"]
    assert dtype_offers(dense, h100, "int4") == []
    assert dtype_offers(dense, GPU_SPECS["A100-SXM4-80GB"], "bf16") == ["fp8", "int4"]
    lines = suggestions(dense, load_topology("8xa100"), [0], Workload(), DEFAULT)
    assert any(
        "--weight-dtype fp8 (weights 72.7 GB, weight-only: A100-SXM4-80GB has no fp8 tensor cores)" in line
        for line in lines
    )


def test_mtp_offered_only_where_the_checkpoint_has_mtp_layers(profiles):
    """num_nextn_predict_layers: 1 in DeepSeek-V3's config (models/DeepSeek-V3.json), 0 in Kimi-K2's, absent in
    Llama-3.1's. Before issue 26 remedies offered 'MTP k=1' for every model."""
    from planner.model.checks import mtp_layers
    from planner.remedies import remedy_list

    names = {
        m: [r.name for r in remedy_list(profiles(m), load_topology("8xh200"), Workload())]
        for m in ("deepseek-v3", "deepseek-r1", "kimi-k2", "llama-70b")
    }
    assert [mtp_layers(profiles(m)) for m in names] == [1, 1, 0, 0]
    assert "MTP k=1 a=0.85" in names["deepseek-v3"] and "MTP k=1 a=0.85" in names["deepseek-r1"]
    assert "MTP k=1 a=0.85" not in names["kimi-k2"] and "MTP k=1 a=0.85" not in names["llama-70b"]
    assert all("draft k=3 a=0.7" in n for n in names.values())


def test_unusable_plan_is_flagged_in_output_and_json(cli):
    """The issue's `planner solve --model llama-405b --topology 4xl40s --offload`: TPOT about 18 s (layers streamed
    over PCIe Gen4 each step), 0.05 tokens/s per user, under the 1 token/s bound."""
    code, out, err = cli("solve", "--model", "llama-405b", "--topology", "4xl40s", "--offload", "--json")
    assert code == 0, err
    import json

    pred = json.loads(out)["prediction"]
    assert pred["tpot_ms"] > 1000 and pred["usable"] is False
    assert "warning: NOT USABLE: TPOT" in err and "under 1" in err
    code, out, _ = cli("solve", "--model", "llama-405b", "--topology", "4xl40s", "--offload")
    assert "NOT USABLE" in out
    code, out, err = cli(
        "estimate",
        "--model",
        "llama-405b",
        "--topology",
        "4xl40s",
        "--tp",
        "4",
        "--offload-layers",
        ",".join(map(str, range(20, 126))),
    )
    assert code == 0 and "NOT USABLE" in out and "warning: NOT USABLE" in err
    code, out, err = cli("estimate", "--model", "llama-8b", "--topology", "1xh100", "--tp", "1", "--json")
    assert code == 0 and json.loads(out)["usable"] is True and "NOT USABLE" not in err


def test_usable_bound_is_one_token_per_second():
    from planner.plan import Prediction

    def pred(tpot_ms: float) -> Prediction:
        return Prediction(
            tpot_ms=tpot_ms,
            ttft_ms=1.0,
            tokens_per_s=1.0,
            tokens_per_s_per_gpu=1.0,
            tokens_per_s_per_user=1000 / tpot_ms,
            max_concurrency=1,
            fits=True,
            memory_per_gpu_bytes={},
            memory_capacity_bytes={},
            hbm_bytes_per_token=0,
            hbm_weight_bytes_per_token=0,
            hbm_kv_bytes_per_token=0,
            interconnect_bytes_per_token=0,
            interconnect_bytes_by_class={},
            time_breakdown_ms={},
            roofline_tpot_ms=1.0,
            roofline_ratio=1.0,
            stages=[],
        )

    assert pred(1000.0).usable and not pred(1000.5).usable


def test_fp8_on_a100_warns_and_trtllm_refuses(cli, tmp_path):
    """A100 has no fp8 tensor cores (A100 datasheet: TF32, BF16, FP16, INT8, INT4; H100 adds FP8): an fp8 plan is
    priced weight-only with a warning, and TensorRT-LLM's script is refused in one line."""
    plan = tmp_path / "plan.json"
    code, _, err = cli("solve", "-m", "llama-70b", "-t", "8xa100", "--weight-dtype", "fp8", "-o", str(plan))
    assert code == 0, err
    assert "warning: fp8 weights on A100-SXM4-80GB, which has no fp8 tensor cores: priced as weight-only" in err
    code, _, err = cli("launch", str(plan), "--engine", "trtllm", "-o", str(tmp_path / "t"))
    assert code == 2 and "TensorRT-LLM runs fp8 weights on fp8 tensor cores; A100-SXM4-80GB has none" in err
    assert "Traceback" not in err
    code, _, err = cli("solve", "-m", "llama-70b", "-t", "8xh100", "--weight-dtype", "fp8")
    assert code == 0 and "no fp8 tensor cores" not in err


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_quantised_plans_scripts_name_the_checkpoint(cli, tmp_path, engine):
    """An fp8 plan of Llama-3.1-70B (a bf16 checkpoint) and an int4 one: each script says which checkpoint --model
    needs; a model's own fp8 checkpoint (DeepSeek-V3) is said to serve as it is."""
    for dtype, words in (("fp8", "FP8 checkpoint"), ("int4", "AWQ" if engine != "trtllm" else "INT4 AWQ (W4A16)")):
        plan = tmp_path / f"{dtype}.json"
        code, _, err = cli("solve", "-m", "llama-70b", "-t", "8xh100", "--weight-dtype", dtype, "-o", str(plan))
        assert code == 0, err
        out = tmp_path / f"{engine}-{dtype}"
        code, _, err = cli("launch", str(plan), "--engine", engine, "-o", str(out))
        assert code == 0, err
        text = "".join(p.read_text() for p in out.glob("*.sh"))
        note = next(line for line in text.splitlines() if f"the plan's weights are {dtype}" in line)
        assert note.startswith("#") and words in note
    code, _, err = cli("solve", "-m", "llama-8b", "-t", "8xh100", "-o", str(tmp_path / "bf16.json"))
    code, _, err = cli("launch", str(tmp_path / "bf16.json"), "--engine", engine, "-o", str(tmp_path / "b"))
    assert code == 0 and "the plan's weights are" not in "".join(p.read_text() for p in (tmp_path / "b").glob("*.sh"))


def test_native_quantised_checkpoint_serves_as_it_is():
    from planner.model.checks import checkpoint_note

    assert (
        checkpoint_note("fp8", "vllm", native_dtype="fp8")
        == "the model's own checkpoint ships in fp8: serve it as it is"
    )
    assert checkpoint_note("bf16", "trtllm", native_dtype="bf16") is None


def test_config_json_model_is_named_by_its_folder_and_counts_agree(cli, tmp_path):
    """`…/my-llama/config.json` is 'my-llama' in the title and the launch header (it was 'config'); a plan at one
    sequence says '1 sequence', a 1-GPU block '1 GPU'."""
    import shutil
    from pathlib import Path

    folder = tmp_path / "my-llama"
    folder.mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "models" / "Llama-3.1-8B.json", folder / "config.json")
    plan = tmp_path / "plan.json"
    code, out, err = cli("solve", "-m", str(folder / "config.json"), "-t", "1xh100", "-o", str(plan))
    assert code == 0, err
    assert out.startswith("my-llama on 1xh100") and "config on" not in out
    code, _, err = cli("launch", str(plan), "--engine", "vllm", "-o", str(tmp_path / "s"))
    assert code == 0, err
    script = "".join(p.read_text() for p in (tmp_path / "s").glob("*.sh"))
    assert "#   model my-llama (config" in script
    assert "predicted at 1 sequence in flight" in script and "1 sequences" not in script
    from planner.units import count

    assert (count(1, "GPU"), count(8, "GPU"), count(1_105, "sequence")) == ("1 GPU", "8 GPUs", "1,105 sequences")


def test_remedies_that_find_nothing_say_what_would_fit(cli):
    """Llama-3.1-405B on one H100: no remedy fits 76 GB (int4 is 215.5 GB), so the message names the GPUs needed and
    what --offload would need (the machine has no host-memory tier); it used to give only the baseline's first line.
    GPUs: (811.7 GB weights + 0.66 GB KV) / 76.3 GB usable per H100 = 10.6, so 11."""
    code, _, err = cli("remedies", "-m", "llama-405b", "-t", "1xh100", "-c", "1")
    assert code == 2, err
    assert "neither as it is nor with any remedy" in err
    assert "still short with --weight-dtype fp8" in err and "more GPUs: about 11 x H100-SXM5-80GB at bf16" in err
    assert "no host-memory tier" in err


def test_trtllm_not_listed_for_fp8_without_fp8_units(profiles, cli):
    """Frontier points and runners-up of an fp8 plan on A100 name vLLM and SGLang, never TensorRT-LLM; on H100 the
    same shapes list it."""
    from planner.frontier import frontier
    from planner.solve.options import SolveOptions

    p = profiles("llama-8b")
    for topo, listed in (("8xa100", False), ("8xh100", True)):
        result = frontier(p, load_topology(topo), Workload(weight_dtype="fp8"), options=SolveOptions(time_limit_s=5))
        assert result.points and any("vllm" in pt.engines for pt in result.points)
        assert any("trtllm" in pt.engines for pt in result.points) is listed, topo
    code, out, err = cli("solve", "-m", "llama-70b", "-t", "8xa100", "--weight-dtype", "fp8")
    assert code == 0, err
    assert "runners-up" in out and "trtllm" not in out.split("runners-up", 1)[1]
