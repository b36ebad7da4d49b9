"""Train the example LoRA adapter `adapters/lora_math_v1` (rank 4 on q/v of SmolLM2-135M-Instruct).

A brief, deterministic SFT on `data/train/sft.jsonl` with the settings in
`training/lora_math_v1.yaml`. Takes about a minute on 2 CPU cores; the adapter is ~0.9 MB, so it
is committed and pinned by its DVC md5 in releases/v1.3.yaml.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from releasectl.manifest.artifacts import EMBEDDED_URI, package_file
    from releasectl.manifest.digests import sha256_file
    from releasectl.replay.engines.hf import load_base

    cfg = yaml.safe_load((ROOT / "training" / "lora_math_v1.yaml").read_text())
    torch.manual_seed(cfg["seed"])
    random.seed(cfg["seed"])
    torch.set_num_threads(2)
    gguf = package_file(EMBEDDED_URI)
    loaded = load_base(gguf, sha256_file(gguf), "float32", "cpu")
    tok, model = loaded.tokenizer, loaded.model
    lora = cfg["lora"]
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=lora["r"],
            lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"],
            target_modules=lora["target_modules"],
            task_type="CAUSAL_LM",
        ),
    )
    rows = [json.loads(x) for x in (ROOT / cfg["data"]).read_text().splitlines() if x.strip()]
    rng = random.Random(cfg["seed"])
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=cfg["learning_rate"])
    tok.padding_side = "right"
    peft_model.train()
    for step in range(cfg["steps"]):
        batch = rng.sample(rows, cfg["batch_size"])
        prompts = [
            tok.apply_chat_template(
                [{"role": "user", "content": r["input"]}], tokenize=False, add_generation_prompt=True
            )
            for r in batch
        ]
        full = [p + r["target"] + tok.eos_token for p, r in zip(prompts, batch, strict=True)]
        enc = tok(full, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = enc["input_ids"].clone()
        for i, p in enumerate(prompts):
            labels[
                i, : len(tok(p, add_special_tokens=False)["input_ids"])
            ] = -100  # learn the answer, not the prompt
        labels[enc["attention_mask"] == 0] = -100
        loss = peft_model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        print(f"step {step + 1}/{cfg['steps']} loss {loss.item():.3f}")
    out = ROOT / "adapters" / "lora_math_v1"
    peft_model.save_pretrained(str(out))
    # save_pretrained writes a README with a timestamp-free model card; drop it to keep the pin stable.
    (out / "README.md").unlink(missing_ok=True)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
