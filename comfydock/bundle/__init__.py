"""Bundles: the deterministic .tar.gz an export writes and an import checks, the comfydock.lock
inside it, and verified, resumable model downloads.

  archive     write_bundle / check_bundle / extract_bundle, dev node file collection, limits
  lockfile    comfydock.lock: dataclasses, dumps/loads with strict validation
  download    resumable HTTP download verified against SHA256 and Blake3
  sources     CivitAI by-hash lookup, Hugging Face URLs, validation of URLs from the network
"""
