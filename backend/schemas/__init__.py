"""The HTTP API's request and response schemas, one module per blueprint (`common` holds the
field types and bodies they share). Request schemas refuse unknown fields (marshmallow's
default RAISE), which the error handler reports as `unknown_fields`; response schemas dump
the domain's values (models and dataclasses), and the OpenAPI document names each component
after its class."""
