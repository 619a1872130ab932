import FlareCLI

await Flare.runMain()
