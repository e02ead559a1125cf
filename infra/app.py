"""CDK app entry point: `python infra/app.py` (or `cdk synth/deploy` from infra/) synthesises the kefu stack."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
INFRA = Path(__file__).resolve().parent
if str(INFRA) not in sys.path:
    sys.path.insert(0, str(INFRA))

# jsii prints a banner for Node versions it has not tested; the synth output does not depend on it.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "16,18,20,21,23")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "16,18,20,21,23")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "16,18,20,21,23")
os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("CDK_DEFAULT_REGION", "us-east-1"))

import aws_cdk as cdk  # noqa: E402
from kefu_stack import KefuStack, Options  # noqa: E402


def build(outdir: str | None = None) -> cdk.App:
    """Builds the app (the stack named after the prefix) and synthesises it into `outdir`."""
    # The cdk CLI passes CDK_OUTDIR; run directly, the template goes to infra/cdk.out/.
    app = cdk.App(outdir=outdir or os.environ.get("CDK_OUTDIR") or str(INFRA / "cdk.out"))
    options = Options.load(app.node, dict(os.environ))
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = os.environ.get("CDK_DEFAULT_REGION") or os.environ["AWS_DEFAULT_REGION"]
    # chalice.cdk writes its package under ./chalice.out; keep that scratch space out of the repository.
    scratch, previous = tempfile.mkdtemp(prefix="kefu-synth-"), os.getcwd()
    os.chdir(scratch)
    try:
        KefuStack(
            app,
            options.prefix,
            options=options,
            env=cdk.Environment(account=account, region=region) if account else None,
            description="kefu 客服: serverless omnichannel customer service",
        )
        app.synth()
    finally:
        os.chdir(previous)
        shutil.rmtree(scratch, ignore_errors=True)
    return app


if __name__ == "__main__":
    build(os.environ.get("KEFU_INFRA_OUTDIR") or None)
