"""Fetching the CIFAKE zip from Kaggle with the official client (``kagglehub`` over ``kagglesdk``).

The client resolves the same credentials as the ``kaggle`` CLI, resumes an interrupted transfer
with an HTTP Range request, checks the server's MD5, and honours ``KAGGLE_API_ENVIRONMENT=TEST``
(http://localhost:7777), which the tests use with a stand-in server.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..base.errors import UserError
from ..base.progress import say
from .archive import import_archive

DATASET = "birdy654/cifake-real-and-ai-generated-synthetic-images"
TOKEN_HELP = (
    "create a token at https://www.kaggle.com/settings (API > Create New Token) and either "
    "export KAGGLE_API_TOKEN=<token>, or save it as ~/.kaggle/access_token (chmod 600); with a legacy "
    "username and key, export KAGGLE_USERNAME=<name> KAGGLE_KEY=<key> or put kaggle.json in ~/.kaggle/. "
    "Or import a zip you have: cifake download --archive PATH.zip"
)


def kaggle_download(data_dir: str | Path, *, force: bool = False, attempts: int = 3) -> int:
    """Download the dataset zip with kagglehub's client (resuming after a dropped connection), then import it."""
    from kagglehub.clients import download_file, get_user_agent
    from kagglehub.config import get_kaggle_credentials
    from kagglehub.handle import parse_dataset_handle
    from kagglesdk.datasets.types.dataset_api_service import ApiDownloadDatasetRequest
    from kagglesdk.kaggle_client import KaggleClient
    from kagglesdk.kaggle_env import get_env

    try:
        creds = get_kaggle_credentials()
    except ValueError as e:  # a kaggle.json that is not JSON or lacks keys
        raise UserError(f"Kaggle credentials unreadable: {e}. {TOKEN_HELP}") from None
    if creds is None:
        raise UserError(f"no Kaggle credentials found: {TOKEN_HELP}")
    data_dir = Path(data_dir)
    staging = data_dir.parent / f".{data_dir.name}.download"
    made_staging = not staging.exists()
    staging.mkdir(parents=True, exist_ok=True)
    archive = staging / "cifake.zip"
    handle = parse_dataset_handle(DATASET)
    request = ApiDownloadDatasetRequest()
    request.owner_slug, request.dataset_slug = DATASET.split("/")
    # verbose=False: kagglesdk's verbose mode prints request headers, i.e. the credential.
    client = KaggleClient(
        env=get_env(),
        verbose=False,
        username=creds.username,
        password=creds.key,
        api_token=creds.api_key,
        user_agent=get_user_agent(),
    )
    say(f"downloading {DATASET} from Kaggle ...")
    try:
        _fetch(client, request, archive, handle, attempts, download_file)
    finally:
        # nothing arrived (offline, refused): leave no empty staging folder behind
        if made_staging and not any(staging.iterdir()):
            staging.rmdir()
    import_archive(archive, data_dir, force=force)
    shutil.rmtree(staging, ignore_errors=True)
    return 0


def _fetch(client, request, archive: Path, handle, attempts: int, download_file) -> None:
    """Download with retries; "resuming" is said only when part of the file arrived before the drop."""
    import requests

    with client:
        for attempt in range(1, attempts + 1):
            try:
                response = client.datasets.dataset_api_client.download_dataset(request)
                download_file(response, str(archive), handle)
                break
            except requests.HTTPError as e:
                status = e.response.status_code if e.response is not None else None
                if status in (401, 403):
                    raise UserError(f"Kaggle rejected the credentials (HTTP {status}): {TOKEN_HELP}") from None
                raise UserError(f"Kaggle answered HTTP {status}; try again later") from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout) as e:
                partial = archive.is_file() and archive.stat().st_size > 0
                if attempt == attempts:
                    raise UserError(
                        f"download failed after {attempts} attempts ({type(e).__name__}: is this machine online?); "
                        + ("run the same command to resume" if partial else "nothing was downloaded")
                    ) from None
                what = "resuming" if partial else "retrying"
                say(f"connection failed ({type(e).__name__}); {what} (attempt {attempt + 1}/{attempts}) ...")
