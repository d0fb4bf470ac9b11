"""The wizard's last steps: Job Settings, Data Transfer, Schedule and Summary.

Limits are the model's, not the widgets': a spin box lets 29 restore points be typed so that
the model can say why 28 is the most (VMware's snapshot limit), beside the field.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from core.errors import InvalidSettingError
from core.model import fields
from core.model.infra import TRANSPORT_ORDER, TransportMode
from core.model.job import (
    DEFAULT_RPO_MINUTES,
    DEFAULT_SUFFIX,
    MAX_RESTORE_POINTS,
    BlockSize,
    Compression,
    DataTransfer,
    JobSettings,
    ProxySelection,
    QuiesceFailure,
    ReplicationJob,
)
from core.model.objects import ObjectKind
from core.model.schedule import (
    ALL_DAYS,
    ALL_HOURS,
    WEEKDAYS,
    AfterJob,
    BackupWindow,
    Daily,
    IntervalUnit,
    JobSchedule,
    Periodic,
    RetryPolicy,
    Trigger,
)
from gui.models.infra import MODE_WORDS
from gui.wizard.base import WizardPage
from gui.wizard.fields import built, with_error

if TYPE_CHECKING:
    from gui.wizard.wizard import JobWizard

BLOCK_WORDS = {
    BlockSize.LOCAL: "Local target (1 MB blocks)",
    BlockSize.LAN: "LAN target (512 KB blocks)",
    BlockSize.WAN: "WAN target (256 KB blocks)",
}
COMPRESSION_WORDS = {
    Compression.AUTO: "Automatic (between sites only)",
    Compression.NONE: "None",
    Compression.OPTIMAL: "Optimal (LZ4, always)",
}
DAY_WORDS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ALLOWED = QColor(0x66, 0xBB, 0x6A)
DENIED = QColor(0xE0, 0xE0, 0xE0)


def _combo(words: Mapping[Any, str]) -> QComboBox:
    combo = QComboBox()
    for value, text in words.items():
        combo.addItem(text, str(value))
    return combo


def _choose(combo: QComboBox, value: object) -> None:
    index = combo.findData(str(value))
    if index >= 0:
        combo.setCurrentIndex(index)


class SettingsPage(WizardPage):
    step = "Job Settings"

    def __init__(self, wizard: JobWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Job Settings")
        self.setSubTitle(
            "Where replica metadata is kept, how replicas are named and how many "
            "restore points they keep."
        )
        self.repository = QComboBox()
        for r in wizard.context.repositories:
            self.repository.addItem(f"{r.name} ({r.site}: {r.path})", r.name)
        self.suffix = QLineEdit(DEFAULT_SUFFIX)
        self.points = QSpinBox()
        self.points.setRange(0, 99)
        self.points.setValue(7)
        self.points.setToolTip(f"At most {MAX_RESTORE_POINTS}: VMware's snapshot limit per VM")
        self.rpo = QSpinBox()
        self.rpo.setRange(0, 999_999)
        self.rpo.setSuffix(" minutes")
        self.rpo.setValue(DEFAULT_RPO_MINUTES)
        self.rpo.setToolTip("A VM whose newest restore point is older violates its RPO")
        self.block_size = _combo(BLOCK_WORDS)
        self.compression = _combo(COMPRESSION_WORDS)
        self.use_cbt = QCheckBox("Use changed block &tracking data")
        self.use_cbt.setChecked(True)
        self.enable_cbt = QCheckBox("&Enable CBT for VMs that have it off")
        self.enable_cbt.setChecked(True)
        form = QFormLayout()
        rows = [
            ("&Repository for replica metadata:", self.repository, "settings.repository"),
            ("Replica name &suffix:", self.suffix, "settings.replica_suffix"),
            ("Restore &points to keep:", self.points, "settings.restore_points"),
            ("Recovery point &objective:", self.rpo, "settings.rpo_minutes"),
        ]
        for text, widget, path in rows:
            box, error = with_error(widget)
            form.addRow(text, box)
            self.errors.add(path, widget, error)
        advanced = QGroupBox("Advanced")
        af = QFormLayout(advanced)
        for text, widget, path in (
            ("Storage optimi&zation:", self.block_size, "settings.block_size"),
            ("Co&mpression:", self.compression, "settings.compression"),
        ):
            box, error = with_error(widget)
            af.addRow(text, box)
            self.errors.add(path, widget, error)
        for widget, path in (
            (self.use_cbt, "settings.use_cbt"),
            (self.enable_cbt, "settings.enable_cbt"),
        ):
            box, error = with_error(widget)
            af.addRow(box)
            self.errors.add(path, widget, error)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(advanced)
        layout.addStretch(1)

    def settings(self) -> JobSettings:
        repository = self.repository.currentData()
        if not isinstance(repository, str):
            raise InvalidSettingError(
                "settings.repository",
                "add a repository first (`replicadesk repo add`): replica metadata lives there",
            )
        guest = self.job_wizard.guest_page  # quiescing is set on the Guest Processing step
        return built(
            "settings",
            lambda: JobSettings(
                repository=repository,
                replica_suffix=self.suffix.text(),
                restore_points=self.points.value(),
                block_size=BlockSize(self.block_size.currentData()),
                compression=Compression(self.compression.currentData()),
                use_cbt=self.use_cbt.isChecked(),
                enable_cbt=self.enable_cbt.isChecked(),
                quiesce=guest.enabled.isChecked(),
                rpo_minutes=self.rpo.value(),
                quiesce_failure=guest.policy(),
            ),
        )

    def check(self) -> None:
        self.settings()

    def fill(self, job: ReplicationJob) -> None:
        s = job.settings
        index = self.repository.findData(s.repository)
        if index < 0:
            self.repository.addItem(f"{s.repository} (not found)", s.repository)
            index = self.repository.count() - 1
        self.repository.setCurrentIndex(index)
        self.suffix.setText(s.replica_suffix)
        self.points.setValue(s.restore_points)
        self.rpo.setValue(s.rpo_minutes)
        _choose(self.block_size, s.block_size)
        _choose(self.compression, s.compression)
        self.use_cbt.setChecked(s.use_cbt)
        self.enable_cbt.setChecked(s.enable_cbt)


class ProxyChoice(QWidget):
    """Automatic, or a ticked list of proxies."""

    def __init__(
        self,
        names: list[str],
        labels: tuple[str, str] = ("&Automatic selection", "Use the selected &proxies:"),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.automatic = QRadioButton(labels[0])
        self.chosen = QRadioButton(labels[1])
        self.automatic.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.automatic)
        group.addButton(self.chosen)
        self.list = QListWidget()
        self.list.setMaximumHeight(90)
        for name in names:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.setEnabled(False)
        self.chosen.toggled.connect(self.list.setEnabled)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.automatic)
        layout.addWidget(self.chosen)
        layout.addWidget(self.list)

    def names(self) -> tuple[str, ...]:
        if self.automatic.isChecked():
            return ()
        return tuple(
            self.list.item(i).text()
            for i in range(self.list.count())
            if self.list.item(i).checkState() == Qt.CheckState.Checked
        )

    def set_names(self, names: tuple[str, ...]) -> None:
        present = {self.list.item(i).text() for i in range(self.list.count())}
        for name in names:
            if name not in present:
                self.list.addItem(QListWidgetItem(name))
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            checked = item.text() in names
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        (self.chosen if names else self.automatic).setChecked(True)


class TransferPage(WizardPage):
    step = "Data Transfer"

    def __init__(self, wizard: JobWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Data Transfer")
        self.setSubTitle("Which backup proxies move the data, and how they reach the disks.")
        proxies = wizard.context.proxies
        self.source = ProxyChoice([f"{p.name}" for p in proxies])
        # Mnemonics of their own: the same two would only move the focus between the boxes.
        self.target = ProxyChoice(
            [f"{p.name}" for p in proxies],
            ("Automatic s&election", "Use the selected pro&xies:"),
        )
        for choice in (self.source, self.target):
            for i, p in enumerate(proxies):
                choice.list.item(i).setToolTip(f"{p.address}:{p.port}, site {p.site}")
        self.modes_auto = QRadioButton(
            "Au&tomatic: " + ", then ".join(MODE_WORDS[str(m)] for m in TRANSPORT_ORDER)
        )
        self.modes_chosen = QRadioButton("These modes, in this &order (drag to reorder):")
        self.modes_auto.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.modes_auto)
        group.addButton(self.modes_chosen)
        self.modes = QListWidget()
        self.modes.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.modes.setMaximumHeight(80)
        self._set_modes(TRANSPORT_ORDER, ())
        self.modes.setEnabled(False)
        self.modes_chosen.toggled.connect(self.modes.setEnabled)
        sources = QGroupBox("Source proxy")
        QVBoxLayout(sources).addWidget(self.source)
        targets = QGroupBox("Target proxy")
        QVBoxLayout(targets).addWidget(self.target)
        modes = QGroupBox("Transport modes")
        ml = QVBoxLayout(modes)
        ml.addWidget(self.modes_auto)
        ml.addWidget(self.modes_chosen)
        modes_box, modes_error = with_error(self.modes)
        ml.addWidget(modes_box)
        source_box, source_error = with_error(sources)
        target_box, target_error = with_error(targets)
        self.errors.add("transfer.source_proxies", self.source, source_error)
        self.errors.add("transfer.target_proxies", self.target, target_error)
        self.errors.add("transfer.transport_modes", self.modes, modes_error)
        row = QHBoxLayout()
        row.addWidget(source_box)
        row.addWidget(target_box)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(modes)
        layout.addStretch(1)

    def _set_modes(
        self, order: tuple[TransportMode, ...], checked: tuple[TransportMode, ...]
    ) -> None:
        self.modes.clear()
        for mode in order:
            item = QListWidgetItem(MODE_WORDS[str(mode)])
            item.setData(Qt.ItemDataRole.UserRole, str(mode))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = mode in checked or not checked
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.modes.addItem(item)

    def transport_modes(self) -> tuple[TransportMode, ...]:
        if self.modes_auto.isChecked():
            return ()
        modes = tuple(
            TransportMode(self.modes.item(i).data(Qt.ItemDataRole.UserRole))
            for i in range(self.modes.count())
            if self.modes.item(i).checkState() == Qt.CheckState.Checked
        )
        if not modes:
            raise InvalidSettingError(
                "transfer.transport_modes", "tick at least one mode, or choose Automatic"
            )
        return modes

    def transfer(self) -> DataTransfer:
        for path, choice in (
            ("transfer.source_proxies", self.source),
            ("transfer.target_proxies", self.target),
        ):
            if choice.chosen.isChecked() and not choice.names():
                raise InvalidSettingError(path, "tick at least one proxy, or choose Automatic")
        src = built("transfer.source_proxies", lambda: ProxySelection(self.source.names()))
        tgt = built("transfer.target_proxies", lambda: ProxySelection(self.target.names()))
        modes = self.transport_modes()
        return built("transfer", lambda: DataTransfer(src, tgt, modes))

    def check(self) -> None:
        self.transfer()

    def fill(self, job: ReplicationJob) -> None:
        t = job.transfer
        self.source.set_names(t.source_proxies.proxies)
        self.target.set_names(t.target_proxies.proxies)
        if t.transport_modes:
            rest = tuple(m for m in TRANSPORT_ORDER if m not in t.transport_modes)
            self._set_modes(t.transport_modes + rest, t.transport_modes)
            self.modes_chosen.setChecked(True)
        else:
            self._set_modes(TRANSPORT_ORDER, ())
            self.modes_auto.setChecked(True)


def _times(text: str) -> tuple[dt.time, ...]:
    out = []
    for i, part in enumerate(p.strip() for p in text.replace(";", ",").split(",")):
        try:
            out.append(dt.datetime.strptime(part, "%H:%M").time())
        except ValueError:
            raise InvalidSettingError(
                f"schedule.daily.at[{i}]", f"{fields.show(part)} is not a time such as 22:30"
            ) from None
    return tuple(out)


class SchedulePage(WizardPage):
    step = "Schedule"

    def __init__(self, wizard: JobWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Schedule")
        self.setSubTitle(
            "When the job runs on its own, how failed VMs are retried, and the hours it may run."
        )
        self.automatic = QGroupBox("Run the job &automatically")
        self.automatic.setCheckable(True)
        self.automatic.setChecked(False)
        self.daily = QRadioButton("&Daily at this time:")
        self.periodic = QRadioButton("&Periodically every:")
        self.after = QRadioButton("After &this job:")
        self.daily.setChecked(True)
        kinds = QButtonGroup(self)
        for b in (self.daily, self.periodic, self.after):
            kinds.addButton(b)
        self.at = QLineEdit("22:00")
        self.at.setToolTip("One or more times of day, such as 22:30 or 06:00, 18:00")
        self.days = [QCheckBox(d) for d in DAY_WORDS]
        for box in self.days:
            box.setChecked(True)
        self.every = QSpinBox()
        self.every.setRange(0, 1440)
        self.every.setValue(1)
        self.unit = QComboBox()
        self.unit.addItem("hours", str(IntervalUnit.HOURS))
        self.unit.addItem("minutes", str(IntervalUnit.MINUTES))
        self.after_job = QComboBox()
        me = wizard.original.name if wizard.original is not None else None
        self.after_job.addItems([j for j in wizard.context.jobs if j != me])
        grid = QGridLayout(self.automatic)
        at_box, at_error = with_error(self.at)
        days_row = QHBoxLayout()
        for box in self.days:
            days_row.addWidget(box)
        days_row.addStretch(1)
        days = QWidget()
        days.setLayout(days_row)
        days_box, days_error = with_error(days)
        every_row = QHBoxLayout()
        every_row.addWidget(self.every)
        every_row.addWidget(self.unit)
        every_row.addStretch(1)
        every = QWidget()
        every.setLayout(every_row)
        every_box, every_error = with_error(every)
        after_box, after_error = with_error(self.after_job)
        grid.addWidget(self.daily, 0, 0)
        grid.addWidget(at_box, 0, 1)
        grid.addWidget(days_box, 1, 1)
        grid.addWidget(self.periodic, 2, 0)
        grid.addWidget(every_box, 2, 1)
        grid.addWidget(self.after, 3, 0)
        grid.addWidget(after_box, 3, 1)
        grid.setColumnStretch(1, 1)
        self.errors.add("schedule.daily", self.at, at_error)
        self.errors.add("schedule.daily.days", days, days_error)
        self.errors.add("schedule.periodic", self.every, every_error)
        self.errors.add("schedule.after", self.after_job, after_error)

        self.retry_times = QSpinBox()
        self.retry_times.setRange(0, 999)
        self.retry_times.setValue(3)
        self.retry_wait = QSpinBox()
        self.retry_wait.setRange(0, 99_999)
        self.retry_wait.setValue(10)
        self.retry_wait.setSuffix(" minutes")
        retry = QGroupBox("Automatic retry")
        rl = QHBoxLayout(retry)
        rl.addWidget(QLabel("Retry failed VMs"))
        rl.addWidget(self.retry_times)
        rl.addWidget(QLabel("times, waiting"))
        rl.addWidget(self.retry_wait)
        rl.addWidget(QLabel("between attempts"))
        rl.addStretch(1)
        retry_box, retry_error = with_error(retry)
        self.errors.add("schedule.retry", retry, retry_error)

        self.window_box = QGroupBox("Terminate the job &outside these hours (green: allowed)")
        self.window_box.setCheckable(True)
        self.window_box.setChecked(False)
        self.grid = QTableWidget(7, 24)
        self.grid.setVerticalHeaderLabels(list(DAY_WORDS))
        self.grid.setHorizontalHeaderLabels([str(h) for h in range(24)])
        self.grid.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.grid.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.grid.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.grid.setFixedHeight(190)
        for d in range(7):
            for h in range(24):
                self.grid.setItem(d, h, QTableWidgetItem(""))
        self.set_hours((ALL_HOURS,) * 7)
        allow = QPushButton("A&llow selected")
        allow.clicked.connect(lambda: self._mark(True))
        deny = QPushButton("De&ny selected")
        deny.clicked.connect(lambda: self._mark(False))
        wl = QVBoxLayout(self.window_box)
        grid_box, grid_error = with_error(self.grid)
        wl.addWidget(grid_box)
        buttons = QHBoxLayout()
        buttons.addWidget(allow)
        buttons.addWidget(deny)
        buttons.addStretch(1)
        wl.addLayout(buttons)
        self.errors.add("schedule.window", self.grid, grid_error)
        self.errors.add("schedule", self.automatic, at_error)
        layout = QVBoxLayout(self)
        layout.addWidget(self.automatic)
        layout.addWidget(retry_box)
        layout.addWidget(self.window_box)
        layout.addStretch(1)
        self._enabled = True

    def _cell(self, day: int, hour: int) -> QTableWidgetItem:
        item = self.grid.item(day, hour)
        if item is None:
            item = QTableWidgetItem("")
            self.grid.setItem(day, hour, item)
        return item

    def set_hours(self, hours: tuple[frozenset[int], ...]) -> None:
        for d in range(7):
            for h in range(24):
                self._cell(d, h).setBackground(ALLOWED if h in hours[d] else DENIED)

    def _mark(self, allowed: bool) -> None:
        for item in self.grid.selectedItems():
            item.setBackground(ALLOWED if allowed else DENIED)
        self.grid.clearSelection()

    def hours(self) -> tuple[frozenset[int], ...]:
        return tuple(
            frozenset(h for h in range(24) if self._cell(d, h).background().color() == ALLOWED)
            for d in range(7)
        )

    def trigger(self) -> Trigger | None:
        if not self.automatic.isChecked():
            return None
        if self.daily.isChecked():
            at = _times(self.at.text())
            days = frozenset(d for d, box in enumerate(self.days) if box.isChecked())
            return built("schedule.daily", lambda: Daily(at, days))
        if self.periodic.isChecked():
            every, unit = self.every.value(), IntervalUnit(self.unit.currentData())
            return built("schedule.periodic", lambda: Periodic(every, unit))
        job = self.after_job.currentText()
        if not job:
            raise InvalidSettingError("schedule.after", "there is no other job to run after")
        return built("schedule.after", lambda: AfterJob(job))

    def schedule(self) -> JobSchedule:
        trigger = self.trigger()
        times, wait = self.retry_times.value(), self.retry_wait.value()
        retry = built("schedule.retry", lambda: RetryPolicy(times, wait))
        hours = self.hours()
        window = (
            built("schedule.window", lambda: BackupWindow(hours))
            if (self.window_box.isChecked())
            else None
        )
        enabled = self._enabled
        return built("schedule", lambda: JobSchedule(trigger, retry, window, enabled))

    def check(self) -> None:
        self.schedule()

    def fill(self, job: ReplicationJob) -> None:
        s = job.schedule
        self._enabled = s.enabled
        trigger = s.trigger
        self.automatic.setChecked(trigger is not None)
        if isinstance(trigger, Daily):
            self.daily.setChecked(True)
            self.at.setText(", ".join(t.strftime("%H:%M") for t in trigger.at))
            for d, box in enumerate(self.days):
                box.setChecked(d in trigger.days)
        elif isinstance(trigger, Periodic):
            self.periodic.setChecked(True)
            self.every.setValue(trigger.every)
            self.unit.setCurrentIndex(self.unit.findData(str(trigger.unit)))
        elif isinstance(trigger, AfterJob):
            self.after.setChecked(True)
            if self.after_job.findText(trigger.job) < 0:
                self.after_job.addItem(trigger.job)
            self.after_job.setCurrentText(trigger.job)
        self.retry_times.setValue(s.retry.times)
        self.retry_wait.setValue(s.retry.wait_minutes)
        self.window_box.setChecked(s.window is not None)
        self.set_hours(s.window.hours if s.window is not None else (ALL_HOURS,) * 7)


def _ref_text(ref: object, default: str = "") -> str:
    name = getattr(ref, "name", None)
    return html.escape(name) if isinstance(name, str) else default


def _schedule_text(s: JobSchedule) -> str:
    t = s.trigger
    if isinstance(t, Daily):
        days = (
            "every day"
            if t.days == ALL_DAYS
            else ", ".join(WEEKDAYS[d].capitalize() for d in sorted(t.days))
        )
        text = f"daily at {', '.join(x.strftime('%H:%M') for x in t.at)}, {days}"
    elif isinstance(t, Periodic):
        text = f"every {t.every} {t.unit}"
    elif isinstance(t, AfterJob):
        text = f"after job {html.escape(t.job)}"
    else:
        text = "on demand only"
    text += f"; retry failed VMs {s.retry.times} times, {s.retry.wait_minutes} minutes apart"
    if s.window is not None:
        text += "; stopped outside its window"
    return text


def _exclusions_text(job: ReplicationJob) -> str:
    src = job.source
    parts = [f"VM {html.escape(v.name)}" for v in src.exclude_vms]
    for d in src.exclude_disks:
        keys = ", ".join(str(k) for k in d.disk_keys)
        parts.append(f"disk(s) {keys} of {html.escape(d.object.name)}")
    return "; ".join(parts) or "none"


def summary_html(job: ReplicationJob, vms: list[str]) -> str:
    src, dst, st = job.source, job.destination, job.settings
    place = dst.placement
    objects = ", ".join(
        html.escape(o.name) + ("" if o.kind == ObjectKind.VM else f" ({o.kind})")
        for o in src.objects
    )
    rows = [
        ("Name", html.escape(job.name)),
        ("Description", html.escape(job.description) or "none"),
        ("Source", f"{html.escape(src.server)}: {objects}"),
        ("VMs now", f"{len(vms)}: {html.escape(', '.join(vms))}" if vms else "none found"),
        ("Exclusions", _exclusions_text(job)),
        (
            "Target",
            f"{html.escape(dst.server)}: {_ref_text(place.target)}, datastore "
            f"{_ref_text(place.datastore)}, "
            f"{_ref_text(place.resource_pool, 'the root resource pool')}, "
            f"{_ref_text(place.folder, 'the datacenter VM folder')}, "
            f"disks {place.disk_type}"
            + (f", {len(dst.overrides)} per-VM override(s)" if dst.overrides else ""),
        ),
        (
            "Network",
            ", ".join(
                f"{html.escape(m.source)} &rarr; {html.escape(m.target)}"
                for m in job.network.mappings
            )
            or "same names only",
        ),
        ("Re-IP", f"{len(job.reip)} rule(s)" if job.reip else "none"),
        (
            "Settings",
            f"repository {html.escape(st.repository)}, replicas named "
            f"&lt;vm&gt;{html.escape(st.replica_suffix)}, {st.restore_points} restore points, "
            f"{BLOCK_WORDS[st.block_size]}, compression {st.compression}, CBT "
            f"{'used' if st.use_cbt else 'not used'}",
        ),
        (
            "Data transfer",
            "source proxy "
            + (", ".join(job.transfer.source_proxies.proxies) or "automatic")
            + "; target proxy "
            + (", ".join(job.transfer.target_proxies.proxies) or "automatic")
            + "; modes "
            + (", ".join(MODE_WORDS[str(m)] for m in job.transfer.transport_modes) or "automatic"),
        ),
        (
            "Seeding",
            ", ".join(
                f"{html.escape(m.vm.name)} &rarr; existing VM {html.escape(m.replica.name)}"
                for m in job.seeding.mappings
            )
            or "none (first runs create the replicas)",
        ),
        (
            "Guest processing",
            (
                "application-aware (quiesced through VMware Tools); when that is not possible: "
                + (
                    "continue crash-consistent with a warning"
                    if st.quiesce_failure == QuiesceFailure.CONTINUE
                    else "fail the VM"
                )
            )
            if st.quiesce
            else "off (crash-consistent snapshots)",
        ),
        ("Schedule", _schedule_text(job.schedule)),
    ]
    cells = "".join(
        f"<tr><td style='padding-right:12px'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


class SummaryPage(WizardPage):
    step = "Summary"

    def __init__(self, wizard: JobWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Summary")
        self.setSubTitle("Check the job, then click Finish to save it.")
        self.text = QTextBrowser()
        self.run_now = QCheckBox("&Run the job when I click Finish")
        layout = QVBoxLayout(self)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.run_now)
        self.setFinalPage(True)

    def initializePage(self) -> None:
        try:
            job = self.job_wizard.build_job()
        except InvalidSettingError as e:
            self.text.setPlainText(f"The job is not complete: {e}")
            return
        vms = [v.vm.name for v in self.job_wizard.vms_page.covered_vms()]
        self.text.setHtml(summary_html(job, vms))

    # Finish builds the whole job (JobWizard.accept) and takes the user to the step at fault.
