"""Uploading an exported folder to the Hugging Face hub."""

from __future__ import annotations

import os
from typing import Optional

from streamasr.errors import ExportError


def push_to_hub(folder: str | os.PathLike, repo_id: str, private: bool = False,
                token: Optional[str] = None, endpoint: Optional[str] = None) -> str:
    """Upload ``folder`` to the Hugging Face hub model repo ``repo_id``; returns its URL.

    The token comes from ``token``, else ``HF_TOKEN`` / the cached ``huggingface-cli
    login``. Failures (no package, no token, no network, refused) raise ``ExportError``
    with the reason; the local folder is never modified.
    """
    try:
        import huggingface_hub
    except ImportError:
        raise ExportError("--push-to-hub needs the huggingface_hub package: pip install huggingface_hub") from None
    token = token or os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") \
        or huggingface_hub.get_token()
    if not token:
        raise ExportError(
            f"no Hugging Face token: set HF_TOKEN or run `huggingface-cli login` "
            f"(the model folder {folder} is complete and can be uploaded later)"
        )
    api = huggingface_hub.HfApi(token=token, endpoint=endpoint)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                          commit_message="Upload streaming Conformer-Transducer (streamasr export)")
    except Exception as error:  # network errors, HTTP errors, bad repo ids
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ExportError(
            f"upload of {folder} to {repo_id} failed: {reason} "
            f"(the local folder is complete and can be uploaded later)"
        ) from None
    return f"https://huggingface.co/{repo_id}"
