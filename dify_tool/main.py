"""Entry point Dify's plugin daemon runs (`python -m main`, cwd = the unpacked plugin root)."""

from dify_plugin import DifyPluginEnv, Plugin

# MAX_REQUEST_TIMEOUT caps a request's lifetime in serverless installs; each rerank call is limited by the
# provider's "Timeout (seconds)" credential, and the daemon's PLUGIN_MAX_EXECUTION_TIMEOUT caps the whole call.
plugin = Plugin(DifyPluginEnv(MAX_REQUEST_TIMEOUT=600))

if __name__ == "__main__":
    plugin.run()
