"""slmexp-toy: a plug-in package adding a runtime (`toy`), a quantizer (`toyq`) and a task kind (`yesno`)."""
