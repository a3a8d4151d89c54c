"""shiprail: progressive delivery across dependent services, with metric gates."""

__version__ = "0.1.0"
