"""The HTTP layer: one blueprint per resource over the domain modules, which know
nothing of HTTP. ``token_billing.app.create_app`` assembles it."""
