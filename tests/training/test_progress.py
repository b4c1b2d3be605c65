"""progress.png: one axis per quantity, each legend beside its own scale."""
from nnocc.training.progress import TrainingHistory, progress_figure


def test_every_panel_has_its_own_axis_and_legend():
    history = TrainingHistory(train_loss=[1.0, 0.8], val_loss=[1.1, 0.9], pseudo_dice=[[0.1, 0.2], [0.3, 0.4]],
                              ema_pseudo_dice=[0.15, 0.2], learning_rate=[1e-3, 5e-4], epoch_seconds=[40.0, 41.0])
    fig = progress_figure(history, ["kidney", "tumor"])
    positions = [tuple(ax.get_position().bounds) for ax in fig.axes]
    assert len(set(positions)) == len(fig.axes) == 4                   # no twin axes
    expected = {"loss": {"train loss", "validation loss"},
                "pseudo Dice": {"pseudo Dice kidney", "pseudo Dice tumor", "pseudo Dice (EMA of mean)"},
                "seconds per epoch": {"epoch time"}, "learning rate": {"learning rate"}}
    for ax in fig.axes:
        legend = {t.get_text() for t in ax.get_legend().get_texts()}
        assert legend == expected[ax.get_ylabel()] == {line.get_label() for line in ax.get_lines()}
